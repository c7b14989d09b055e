-- Prepares the database the naive pgbench run writes to (bench/run.sh): Lupa's schema is
-- already there (`lupa migrate`); this adds a tenant row for the foreign keys, and :nknown
-- known devices (subject, identifier, five ledger events, chain head at seq 5, five states)
-- that the script's 20 % of returning devices pick from. Ids follow write.sql's formulas.
-- psql variables: tenant, nknown, now, secret, value_ct, kid_enc, kid_lookup, p1..p5, k1..k5.
\set ON_ERROR_STOP on
INSERT INTO tenants (id, slug, name, legal_name, created_at, updated_at)
VALUES (:'tenant', 'bench-naive', 'Bench', 'Bench Oy', :now, :now);

INSERT INTO subjects (tenant_id, id, kind, pseudonym, secret, secret_kid, created_at)
SELECT :'tenant', md5(g::text)::uuid::text, 'device', 'ps_' || left(md5(g::text || 'p'), 22),
       :'secret'::bytea, :'kid_enc', :now
FROM generate_series(1, :nknown) g;

INSERT INTO identifiers (tenant_id, kind, namespace, value_hash, hash_kid, subject_id, subject_kind, pseudonym,
                         value_ct, value_kid, created_at)
SELECT :'tenant', 'device', '', decode(md5(g::text || 'v') || md5(g::text || 'w'), 'hex'), :'kid_lookup',
       md5(g::text)::uuid::text, 'device', 'ps_' || left(md5(g::text || 'p'), 22), :'value_ct'::bytea, :'kid_enc', :now
FROM generate_series(1, :nknown) g;

INSERT INTO consent_events (tenant_id, subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version,
    version_hash, text_hash, decision, property_id, channel, method, language, actor, interaction_id,
    server_time, prev_hash, hash)
SELECT :'tenant', md5(g::text)::uuid::text, s, md5(g::text || 'e' || s::text)::uuid::text, 'decision',
       'ps_' || left(md5(g::text || 'p'), 22), (ARRAY[:'k1', :'k2', :'k3', :'k4', :'k5'])[s], 1,
       repeat(md5('v' || s::text), 2), repeat(md5('t' || s::text), 2), 'granted', 'property', 'web',
       'banner_custom', 'fi', 'device', md5(g::text || 'i1')::uuid::text, :now,
       CASE WHEN s = 1 THEN '' ELSE repeat(md5(g::text || 'h' || (s - 1)::text), 2) END,
       repeat(md5(g::text || 'h' || s::text), 2)
FROM generate_series(1, :nknown) g, generate_series(1, 5) s;

INSERT INTO chain_heads (tenant_id, subject_id, seq, hash)
SELECT :'tenant', md5(g::text)::uuid::text, 5, repeat(md5(g::text || 'h5'), 2)
FROM generate_series(1, :nknown) g;

INSERT INTO consent_state (tenant_id, subject_id, purpose_id, purpose_key, state, version, decided_at,
    expires_at, event_seq, method)
SELECT :'tenant', md5(g::text)::uuid::text, (ARRAY[:'p1', :'p2', :'p3', :'p4', :'p5'])[s],
       (ARRAY[:'k1', :'k2', :'k3', :'k4', :'k5'])[s], 'granted', 1, :now, :now + 31536000000, s, 'banner_custom'
FROM generate_series(1, :nknown) g, generate_series(1, 5) s;

-- For raw_insert_tps: the cheapest durable write, one small row per transaction.
CREATE TABLE bench_raw (id bigint PRIMARY KEY, created_at bigint NOT NULL, v text NOT NULL);

VACUUM ANALYZE;
