-- One banner_custom interaction with five device-level decisions, written the way Lupa's
-- consent writer (consent/writer.go, commitOnce) writes it, but one transaction per request:
-- the "naive" design that group commit is measured against (bench/run.sh: naive_tps).
-- The statements, their columns and their order are the writer's for a batch of one:
--   known device (20 %): lock the chain head (SELECT … FOR UPDATE);
--   then: idempotency key with the stored answer; a new device's subject and identifier; the
--   five ledger events; the chain head upsert; the five state upserts; the domain event; the
--   receipt.
-- (The writer reads a known subject's state only when another request moved its chain head
-- after the request planned its events; with one transaction per request that cannot happen.)
-- Values have Lupa's sizes: UUID ids, 64-hex hashes, and the answer, receipt (JWS) and domain
-- event payload of a real interaction that run.sh copies from the Lupa run (-D variables).
-- Ids and hashes are derived from the random :a with md5 on the server (a few microseconds).
\set r random(1, 100)
\set idemexp :now + 86400000
\set stateexp :now + 31536000000
BEGIN;
\if :r <= 20
\set a random(1, :nknown)
SELECT subject_id, seq, hash FROM chain_heads WHERE tenant_id = :tenant AND subject_id = ANY(ARRAY[md5(:a::text)::uuid::text]) ORDER BY subject_id FOR UPDATE \gset
\set s1 :seq + 1
\set s2 :seq + 2
\set s3 :seq + 3
\set s4 :seq + 4
\set s5 :seq + 5
INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, status, response, created_at, expires_at, response_kid) VALUES (:tenant, '/v1/consents', 'wb-' || :a::text || '-' || :s1::text, repeat(md5(:a::text || 'r' || :s1::text), 2), 201, :response, :now, :idemexp, :kid_enc);
INSERT INTO consent_events (tenant_id, subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version, version_hash, text_hash, decision, property_id, channel, method, agent, language, ui_hash, actor, interaction_id, reason, ref, server_time, client_time, prev_hash, hash) VALUES
  (:tenant, md5(:a::text)::uuid::text, :s1, md5(:a::text || 'e' || :s1::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k1, 1, :vh1, :th1, :d1, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, :hash, repeat(md5(:a::text || 'h' || :s1::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s2, md5(:a::text || 'e' || :s2::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k2, 1, :vh2, :th2, :d2, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s1::text), 2), repeat(md5(:a::text || 'h' || :s2::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s3, md5(:a::text || 'e' || :s3::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k3, 1, :vh3, :th3, :d3, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s2::text), 2), repeat(md5(:a::text || 'h' || :s3::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s4, md5(:a::text || 'e' || :s4::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k4, 1, :vh4, :th4, :d4, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s3::text), 2), repeat(md5(:a::text || 'h' || :s4::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s5, md5(:a::text || 'e' || :s5::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k5, 1, :vh5, :th5, :d5, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s4::text), 2), repeat(md5(:a::text || 'h' || :s5::text), 2));
\else
\set a random(:nknown + 1, 4611686018427387903)
\set seq 0
\set s1 :seq + 1
\set s2 :seq + 2
\set s3 :seq + 3
\set s4 :seq + 4
\set s5 :seq + 5
INSERT INTO idempotency_keys (tenant_id, route, key, request_hash, status, response, created_at, expires_at, response_kid) VALUES (:tenant, '/v1/consents', 'wb-' || :a::text || '-' || :s1::text, repeat(md5(:a::text || 'r' || :s1::text), 2), 201, :response, :now, :idemexp, :kid_enc);
INSERT INTO subjects (tenant_id, id, kind, pseudonym, secret, secret_kid, created_at) VALUES (:tenant, md5(:a::text)::uuid::text, 'device', 'ps_' || left(md5(:a::text || 'p'), 22), :secret, :kid_enc, :now);
INSERT INTO identifiers (tenant_id, kind, namespace, value_hash, hash_kid, subject_id, subject_kind, pseudonym, value_ct, value_kid, created_at) VALUES (:tenant, 'device', '', decode(md5(:a::text || 'v') || md5(:a::text || 'w'), 'hex'), :kid_lookup, md5(:a::text)::uuid::text, 'device', 'ps_' || left(md5(:a::text || 'p'), 22), :value_ct, :kid_enc, :now);
INSERT INTO consent_events (tenant_id, subject_id, seq, id, kind, pseudonym, purpose_key, purpose_version, version_hash, text_hash, decision, property_id, channel, method, agent, language, ui_hash, actor, interaction_id, reason, ref, server_time, client_time, prev_hash, hash) VALUES
  (:tenant, md5(:a::text)::uuid::text, :s1, md5(:a::text || 'e' || :s1::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k1, 1, :vh1, :th1, :d1, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, '', repeat(md5(:a::text || 'h' || :s1::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s2, md5(:a::text || 'e' || :s2::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k2, 1, :vh2, :th2, :d2, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s1::text), 2), repeat(md5(:a::text || 'h' || :s2::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s3, md5(:a::text || 'e' || :s3::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k3, 1, :vh3, :th3, :d3, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s2::text), 2), repeat(md5(:a::text || 'h' || :s3::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s4, md5(:a::text || 'e' || :s4::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k4, 1, :vh4, :th4, :d4, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s3::text), 2), repeat(md5(:a::text || 'h' || :s4::text), 2)),
  (:tenant, md5(:a::text)::uuid::text, :s5, md5(:a::text || 'e' || :s5::text)::uuid::text, 'decision', 'ps_' || left(md5(:a::text || 'p'), 22), :k5, 1, :vh5, :th5, :d5, :property, 'web', 'banner_custom', '', 'fi', :uihash, 'device', md5(:a::text || 'i' || :s1::text)::uuid::text, '', '', :now, :ctime, repeat(md5(:a::text || 'h' || :s4::text), 2), repeat(md5(:a::text || 'h' || :s5::text), 2));
\endif
INSERT INTO chain_heads (tenant_id, subject_id, seq, hash) VALUES (:tenant, md5(:a::text)::uuid::text, :s5, repeat(md5(:a::text || 'h' || :s5::text), 2)) ON CONFLICT (tenant_id, subject_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
INSERT INTO consent_state (tenant_id, subject_id, purpose_id, purpose_key, state, version, decided_at, expires_at, event_seq, method) VALUES
  (:tenant, md5(:a::text)::uuid::text, :p1, :k1, :d1, 1, :now, :stateexp, :s1, 'banner_custom'),
  (:tenant, md5(:a::text)::uuid::text, :p2, :k2, :d2, 1, :now, :stateexp, :s2, 'banner_custom'),
  (:tenant, md5(:a::text)::uuid::text, :p3, :k3, :d3, 1, :now, :stateexp, :s3, 'banner_custom'),
  (:tenant, md5(:a::text)::uuid::text, :p4, :k4, :d4, 1, :now, :stateexp, :s4, 'banner_custom'),
  (:tenant, md5(:a::text)::uuid::text, :p5, :k5, :d5, 1, :now, :stateexp, :s5, 'banner_custom')
ON CONFLICT (tenant_id, subject_id, purpose_id) DO UPDATE SET purpose_key = excluded.purpose_key, state = excluded.state, version = excluded.version, decided_at = excluded.decided_at, expires_at = excluded.expires_at, event_seq = excluded.event_seq, method = excluded.method;
INSERT INTO domain_events (tenant_id, id, type, schema_version, subject_id, subject_seq, payload, created_at) VALUES (:tenant, md5(:a::text || 'd' || :s1::text)::uuid::text, 'consent.recorded', 1, md5(:a::text)::uuid::text, :s5, :payload, :now);
INSERT INTO receipts (tenant_id, id, subject_id, jws, created_at) VALUES (:tenant, md5(:a::text || 'i' || :s1::text)::uuid::text, md5(:a::text)::uuid::text, :receipt, :now);
COMMIT;
