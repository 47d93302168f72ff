-- Bulk import at database speed (`lookout import --database-uri`).
--
-- 1. The key columns of the data tables compare bytewise (COLLATE "C"). Under a linguistic
--    collation every comparison in their primary-key indexes goes through the C library's
--    strcoll, which made inserting a million tuples several times slower. Equality is
--    unchanged (a deterministic collation is equal only when the bytes are), and nothing
--    reads these tables in text order. Only the indexes are rebuilt, not the tables.
-- 2. The tables that take a row per tuple, attribute, entity ID or change no longer have
--    foreign keys: each cost one lookup per row inserted (PostgreSQL checks a foreign key row
--    by row), most of the time of a bulk import. What their cascades deleted is deleted
--    explicitly instead: deleting a tenant deletes its tuples, attributes, entity numbers and
--    change rows in the transaction that deletes the tenant (after the tenant's row, so a
--    write in progress has committed and a later one finds no tenant), and the collector
--    deletes the collected revisions' change rows with the revisions. The low-volume tables
--    (schemas, bundles, revisions) keep theirs.
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

ALTER TABLE lookout_tuples DROP CONSTRAINT lookout_tuples_tenant_id_fkey;
ALTER TABLE lookout_attributes DROP CONSTRAINT lookout_attributes_tenant_id_fkey;
ALTER TABLE lookout_entities DROP CONSTRAINT lookout_entities_tenant_id_fkey;
ALTER TABLE lookout_changes DROP CONSTRAINT lookout_changes_tenant_id_revision_fkey;
