-- Tether's PostgreSQL schema. Applied at server start (idempotent). Keys use the "C" collation
-- so that they order by UTF-8 bytes, the protocol's key order. The database must be UTF8.

CREATE TABLE IF NOT EXISTS scopes (
    scope      text COLLATE "C" PRIMARY KEY,
    seq        bigint NOT NULL DEFAULT 0,
    count      bigint NOT NULL DEFAULT 0,
    digest     bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex'),
    horizon    bigint NOT NULL DEFAULT 0,
    updated_at text
);

CREATE TABLE IF NOT EXISTS records (
    scope      text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    version    bigint NOT NULL DEFAULT 0,
    updated_at text NOT NULL DEFAULT '',
    deleted    boolean NOT NULL DEFAULT false,
    data       jsonb,
    hash       text,
    PRIMARY KEY (scope, collection, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS records_feed ON records (scope, version);
CREATE INDEX IF NOT EXISTS records_tombstones ON records (scope, updated_at) WHERE deleted;
-- The feed of one collection: subsets read it above their checkpoint (docs/partial-sync.md).
CREATE INDEX IF NOT EXISTS records_collection_feed ON records (scope, collection, version);
-- A live row the server could not read back (a number beyond f64, nesting deeper than its JSON
-- parser allows, a key it refuses): why, or NULL. Such a row has no hash, so it is neither
-- counted nor served; incremental feeds carry it as a tombstone (docs/server.md).
ALTER TABLE records ADD COLUMN IF NOT EXISTS quarantine text;
DROP INDEX IF EXISTS records_unhashed;
-- Rows waiting for the server: live, no hash, not quarantined.
CREATE INDEX IF NOT EXISTS records_pending ON records (scope)
    WHERE hash IS NULL AND NOT deleted AND quarantine IS NULL;
CREATE INDEX IF NOT EXISTS records_quarantined ON records (scope, collection, id)
    WHERE quarantine IS NOT NULL;

-- Per scope, client and record, the last mutation the server applied for that client (issue
-- 8, protocol v1.1): a repeat is answered with this, not judged again. Kept as long as
-- tombstones are (the purge removes older entries).
CREATE TABLE IF NOT EXISTS applied (
    scope      text COLLATE "C" NOT NULL,
    client     text COLLATE "C" NOT NULL,
    collection text COLLATE "C" NOT NULL,
    id         text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,
    version    bigint NOT NULL,
    updated_at text NOT NULL,
    hash       text,
    PRIMARY KEY (scope, client, collection, id)
);
CREATE INDEX IF NOT EXISTS applied_age ON applied (scope, updated_at);

CREATE OR REPLACE FUNCTION tether_now() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE OR REPLACE FUNCTION tether_u32le(n integer) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT set_byte(set_byte(set_byte(set_byte('\x00000000'::bytea,
        0, n & 255), 1, (n >> 8) & 255), 2, (n >> 16) & 255), 3, (n >> 24) & 255)
$$;

-- The leaf of a record in the scope digest (docs/protocol.md, "Scope digest").
CREATE OR REPLACE FUNCTION tether_leaf(c text, i text, h text) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(tether_u32le(octet_length(c)) || convert_to(c, 'UTF8')
        || tether_u32le(octet_length(i)) || convert_to(i, 'UTF8') || decode(h, 'hex'))
$$;

-- a + sign * b modulo 2^256, both 32-byte little-endian.
CREATE OR REPLACE FUNCTION tether_add(a bytea, b bytea, sign integer) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r bytea := a;
    carry integer := 0;
    s integer;
BEGIN
    FOR k IN 0..31 LOOP
        s := get_byte(a, k) + sign * get_byte(b, k) + carry;
        IF s < 0 THEN s := s + 256; carry := -1;
        ELSIF s > 255 THEN s := s - 256; carry := 1;
        ELSE carry := 0;
        END IF;
        r := set_byte(r, k, s);
    END LOOP;
    RETURN r;
END $$;

-- BEFORE row trigger: assigns the version under the scope's lock (the UPDATE of the scope row
-- holds its row lock until the transaction ends, so versions follow commit order), stamps
-- updated_at, turns a DELETE of a live record into a tombstone, and clears the hash whenever
-- a writer other than the server itself (which sets tether.writer = 'server' in its
-- transactions) writes data: the server reads every such row in Rust before it is counted or
-- served, computes its hash, or quarantines it. New data lifts a quarantine.
CREATE OR REPLACE FUNCTION tether_records_before() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    -- The server's batch writes (storage/postgres/bulk.rs) do this bookkeeping for the whole
    -- batch themselves; per row it costs O(n^2) in one transaction.
    IF current_setting('tether.writer', true) = 'bulk' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.deleted THEN
            RETURN OLD; -- purging a tombstone
        END IF;
        UPDATE records SET deleted = true
            WHERE scope = OLD.scope AND collection = OLD.collection AND id = OLD.id;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.scope, NEW.collection, NEW.id)
            IS DISTINCT FROM (OLD.scope, OLD.collection, OLD.id) THEN
        RAISE EXCEPTION 'tether: the key of a record cannot change; delete it and insert another';
    END IF;
    IF NEW.collection = '' OR NEW.id = '' THEN
        RAISE EXCEPTION 'tether: collection and id must not be empty';
    END IF;
    IF NEW.deleted THEN
        NEW.data := NULL;
        NEW.hash := NULL;
        NEW.quarantine := NULL;
    ELSIF NEW.data IS NULL OR jsonb_typeof(NEW.data) <> 'object' THEN
        RAISE EXCEPTION 'tether: the data of a live record must be a JSON object';
    ELSIF TG_OP = 'INSERT' OR NEW.data IS DISTINCT FROM OLD.data OR OLD.deleted THEN
        NEW.quarantine := NULL;
        IF current_setting('tether.writer', true) IS DISTINCT FROM 'server' THEN
            NEW.hash := NULL;
        END IF;
    END IF;
    IF NEW.quarantine IS NOT NULL THEN
        NEW.hash := NULL;
    END IF;
    IF NEW.hash IS NOT NULL AND NEW.hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'tether: hash must be 64 lowercase hex digits';
    END IF;
    INSERT INTO scopes (scope) VALUES (NEW.scope) ON CONFLICT DO NOTHING;
    -- An INSERT of a key that exists is either an upsert, whose DO UPDATE fires this trigger
    -- again as an UPDATE, or one that will fail or do nothing: either way the UPDATE (or
    -- nothing) takes the version, so that a write advances the scope by exactly one. The
    -- scope's row is locked first, so no other writer can add or purge the key in between.
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM scopes WHERE scope = NEW.scope FOR UPDATE;
        IF EXISTS (SELECT 1 FROM records WHERE scope = NEW.scope
                   AND collection = NEW.collection AND id = NEW.id) THEN
            RETURN NEW;
        END IF;
    END IF;
    NEW.updated_at := tether_now();
    UPDATE scopes SET seq = seq + 1, updated_at = NEW.updated_at
        WHERE scope = NEW.scope RETURNING seq INTO v;
    NEW.version := v;
    RETURN NEW;
END $$;

-- AFTER row trigger: keeps the scope's live count and digest. A live row without a hash is not
-- counted until the server has computed its hash.
CREATE OR REPLACE FUNCTION tether_records_after() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    d bytea;
    n bigint := 0;
BEGIN
    IF current_setting('tether.writer', true) = 'bulk' THEN
        RETURN NULL;
    END IF;
    SELECT digest INTO d FROM scopes WHERE scope = NEW.scope;
    IF TG_OP = 'UPDATE' AND NOT OLD.deleted AND OLD.hash IS NOT NULL THEN
        d := tether_add(d, tether_leaf(OLD.collection, OLD.id, OLD.hash), -1);
        n := n - 1;
    END IF;
    IF NOT NEW.deleted AND NEW.hash IS NOT NULL THEN
        d := tether_add(d, tether_leaf(NEW.collection, NEW.id, NEW.hash), 1);
        n := n + 1;
    END IF;
    UPDATE scopes SET digest = d, count = count + n WHERE scope = NEW.scope;
    -- Wakes live pulls on every instance at commit (identical notifications of one
    -- transaction are delivered once).
    PERFORM pg_notify('tether_changes', TG_TABLE_SCHEMA || ':' || NEW.scope);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS tether_records_before ON records;
-- The WHEN clauses spare the server's batch writes a call per row (a quarter of a batch's time);
-- the functions check the same setting, for a server whose triggers predate the clauses.
CREATE TRIGGER tether_records_before BEFORE INSERT OR UPDATE OR DELETE ON records
    FOR EACH ROW WHEN (current_setting('tether.writer', true) IS DISTINCT FROM 'bulk')
    EXECUTE FUNCTION tether_records_before();
DROP TRIGGER IF EXISTS tether_records_after ON records;
CREATE TRIGGER tether_records_after AFTER INSERT OR UPDATE ON records
    FOR EACH ROW WHEN (current_setting('tether.writer', true) IS DISTINCT FROM 'bulk')
    EXECUTE FUNCTION tether_records_after();

-- Declared sources (docs/server.md, "Declared sources"). The capture triggers on an
-- application's tables queue here the keys each statement touched, with the scope they had;
-- the consumer reads those rows again and deletes the entries it handled (no cursor, so a
-- transaction that commits late is never skipped).
CREATE TABLE IF NOT EXISTS source_changes (
    id         bigserial PRIMARY KEY,
    collection text COLLATE "C" NOT NULL,
    key        text COLLATE "C",   -- NULL: the table was truncated
    scope      text COLLATE "C"
);
-- Each source's state: the fingerprint of its table's shape and declaration (a change sends
-- the table again), and the pass in progress: 'send' (rows in key order after pass_after) then
-- 'sweep' (records whose row is gone, after pass_after = [scope, id]), NULL when none runs.
CREATE TABLE IF NOT EXISTS sources (
    collection  text COLLATE "C" PRIMARY KEY,
    relation    text NOT NULL,
    fingerprint text NOT NULL,
    pass        text,
    pass_after  text,
    sent        bigint NOT NULL DEFAULT 0
);
-- Whether the running pass ends with a sweep: not when the collection held no live record
-- when the pass started (a first declaration), where there is nothing to sweep.
ALTER TABLE sources ADD COLUMN IF NOT EXISTS sweep boolean NOT NULL DEFAULT true;
