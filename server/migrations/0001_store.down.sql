DROP TABLE IF EXISTS lookout_changes;
DROP TABLE IF EXISTS lookout_revisions;
DROP TABLE IF EXISTS lookout_bundles;
DROP TABLE IF EXISTS lookout_attributes;
DROP TABLE IF EXISTS lookout_tuples;
DROP TABLE IF EXISTS lookout_entities;
DROP TABLE IF EXISTS lookout_schemas;
DROP TABLE IF EXISTS lookout_tenants;
