-- Rows the foreign keys would refuse (there should be none) go first.
DELETE FROM lookout_changes c
WHERE NOT EXISTS (SELECT 1 FROM lookout_revisions r
                  WHERE r.tenant_id = c.tenant_id AND r.revision = c.revision);
DELETE FROM lookout_tuples t WHERE NOT EXISTS (SELECT 1 FROM lookout_tenants x WHERE x.id = t.tenant_id);
DELETE FROM lookout_attributes a WHERE NOT EXISTS (SELECT 1 FROM lookout_tenants x WHERE x.id = a.tenant_id);
DELETE FROM lookout_entities e WHERE NOT EXISTS (SELECT 1 FROM lookout_tenants x WHERE x.id = e.tenant_id);
ALTER TABLE lookout_changes
    ADD CONSTRAINT lookout_changes_tenant_id_revision_fkey
    FOREIGN KEY (tenant_id, revision) REFERENCES lookout_revisions (tenant_id, revision) ON DELETE CASCADE;
ALTER TABLE lookout_entities
    ADD CONSTRAINT lookout_entities_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES lookout_tenants (id) ON DELETE CASCADE;
ALTER TABLE lookout_attributes
    ADD CONSTRAINT lookout_attributes_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES lookout_tenants (id) ON DELETE CASCADE;
ALTER TABLE lookout_tuples
    ADD CONSTRAINT lookout_tuples_tenant_id_fkey
    FOREIGN KEY (tenant_id) REFERENCES lookout_tenants (id) ON DELETE CASCADE;

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
