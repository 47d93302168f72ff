DELETE FROM lookout_changes c
WHERE NOT EXISTS (SELECT 1 FROM lookout_revisions r
                  WHERE r.tenant_id = c.tenant_id AND r.revision = c.revision);
ALTER TABLE lookout_changes
    ADD CONSTRAINT lookout_changes_tenant_id_revision_fkey
    FOREIGN KEY (tenant_id, revision) REFERENCES lookout_revisions (tenant_id, revision) ON DELETE CASCADE;

ALTER TABLE lookout_entities
    ALTER COLUMN entity_type TYPE TEXT COLLATE "default",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "default";

ALTER TABLE lookout_attributes
    ALTER COLUMN entity_type TYPE TEXT COLLATE "default",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "default",
    ALTER COLUMN name TYPE TEXT COLLATE "default";

ALTER TABLE lookout_tuples
    ALTER COLUMN entity_type TYPE TEXT COLLATE "default",
    ALTER COLUMN entity_id TYPE TEXT COLLATE "default",
    ALTER COLUMN relation TYPE TEXT COLLATE "default",
    ALTER COLUMN subject_type TYPE TEXT COLLATE "default",
    ALTER COLUMN subject_id TYPE TEXT COLLATE "default",
    ALTER COLUMN subject_relation TYPE TEXT COLLATE "default";
