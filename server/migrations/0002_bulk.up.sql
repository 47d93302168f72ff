-- Bulk import at database speed (`lookout import --database-uri`).
--
-- 1. The key columns of the data tables compare bytewise (COLLATE "C"). Under a linguistic
--    collation every comparison in their primary-key indexes goes through the C library's
--    strcoll, which made inserting a million tuples several times slower. Equality is
--    unchanged (a deterministic collation is equal only when the bytes are), and nothing
--    reads these tables in text order. Only the indexes are rebuilt, not the tables.
-- 2. The change log no longer references lookout_revisions: the foreign key cost one
--    lookup per change row, most of the time of a bulk import. The two deletions it cascaded
--    are made explicitly instead: the collector deletes the collected revisions' change rows
--    in the transaction that deletes the revisions, and deleting a tenant deletes its change
--    rows in the same transaction as the tenant.
ALTER TABLE lookout_tuples
    ALTER COLUMN entity_type TYPE TEXT COLLATE "C",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "C",
    ALTER COLUMN relation TYPE TEXT COLLATE "C",
    ALTER COLUMN subject_type TYPE TEXT COLLATE "C",
    ALTER COLUMN subject_id TYPE TEXT COLLATE "C",
    ALTER COLUMN subject_relation TYPE TEXT COLLATE "C";

ALTER TABLE lookout_attributes
    ALTER COLUMN entity_type TYPE TEXT COLLATE "C",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "C",
    ALTER COLUMN name TYPE TEXT COLLATE "C";

ALTER TABLE lookout_entities
    ALTER COLUMN entity_type TYPE TEXT COLLATE "C",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "C";

ALTER TABLE lookout_changes DROP CONSTRAINT lookout_changes_tenant_id_revision_fkey;
-- Change rows of tenants deleted before this migration, which the foreign key's cascade
-- would have removed already, so nothing is left behind.
DELETE FROM lookout_changes c
WHERE NOT EXISTS (SELECT 1 FROM lookout_revisions r
                  WHERE r.tenant_id = c.tenant_id AND r.revision = c.revision);
