-- Lookout's PostgreSQL store. Every write is one transaction and one revision of its tenant;
-- see server/src/storage/postgres/mod.rs for how revisions are ordered.

CREATE TABLE lookout_tenants (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    -- Unique per tenant ever created: a re-created tenant is a new incarnation.
    incarnation   BIGSERIAL NOT NULL UNIQUE,
    created_ms    BIGINT NOT NULL,
    -- The latest committed revision.
    revision      BIGINT NOT NULL DEFAULT 0,
    -- Changes at or below this revision were garbage-collected.
    gc_revision   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE lookout_schemas (
    tenant_id     TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    version       TEXT NOT NULL,
    seq           BIGSERIAL NOT NULL,
    source        TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
CREATE INDEX lookout_schemas_seq ON lookout_schemas (tenant_id, seq);

-- Durable entity numbers: dense per (tenant, entity type), shared by every replica.
CREATE TABLE lookout_entities (
    tenant_id     TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    entity_type   TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    number        INTEGER NOT NULL CHECK (number >= 0),
    PRIMARY KEY (tenant_id, entity_type, entity_id),
    UNIQUE (tenant_id, entity_type, number)
);

CREATE TABLE lookout_tuples (
    tenant_id        TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    relation         TEXT NOT NULL,
    subject_type     TEXT NOT NULL,
    subject_id       TEXT NOT NULL,
    -- '' for a plain subject.
    subject_relation TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, entity_type, entity_id, relation, subject_type, subject_id, subject_relation)
);

CREATE TABLE lookout_attributes (
    tenant_id     TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    entity_type   TEXT NOT NULL,
    entity_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- JSON: {"type": "integer", "value": 5}.
    value         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, entity_type, entity_id, name)
);

CREATE TABLE lookout_bundles (
    tenant_id     TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- The encoded base.v1.DataBundle.
    body          BYTEA NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One row per committed revision, also for writes that changed nothing.
CREATE TABLE lookout_revisions (
    tenant_id     TEXT NOT NULL REFERENCES lookout_tenants (id) ON DELETE CASCADE,
    revision      BIGINT NOT NULL,
    committed_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, revision)
);

-- The change log: what each revision changed, in order, with durable entity numbers.
CREATE TABLE lookout_changes (
    tenant_id        TEXT NOT NULL,
    revision         BIGINT NOT NULL,
    seq              INTEGER NOT NULL,
    -- 'c' create/write, 'd' delete.
    op               CHAR(1) NOT NULL,
    -- 't' tuple, 'a' attribute.
    kind             CHAR(1) NOT NULL,
    entity_type      TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    entity_number    INTEGER NOT NULL,
    -- The relation of a tuple, the name of an attribute.
    relation         TEXT NOT NULL,
    subject_type     TEXT,
    subject_id       TEXT,
    subject_number   INTEGER,
    subject_relation TEXT,
    -- An attribute's value (the deleted value for a delete).
    value            TEXT,
    PRIMARY KEY (tenant_id, revision, seq),
    FOREIGN KEY (tenant_id, revision) REFERENCES lookout_revisions (tenant_id, revision) ON DELETE CASCADE
);

-- The tenant every server has from the start.
INSERT INTO lookout_tenants (id, name, created_ms)
VALUES ('t1', 'default', (extract(epoch FROM now()) * 1000)::BIGINT);
