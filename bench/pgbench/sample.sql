-- Prints name=value lines describing one real banner interaction that Lupa wrote (run against
-- Lupa's database after the write benchmark), so that the naive pgbench run (write.sql)
-- writes values of exactly Lupa's sizes: tenant and property ids, the five purposes, their
-- hashes and decisions, the stored answer, the receipt (JWS), the domain event payload, and
-- an encrypted subject key and identifier.
WITH i AS (SELECT tenant_id, interaction_id FROM consent_events
           WHERE method = 'banner_custom' AND seq = 5 ORDER BY server_time DESC LIMIT 1),
r AS (SELECT r.tenant_id, r.id, r.jws FROM receipts r JOIN i ON r.tenant_id = i.tenant_id AND r.id = i.interaction_id),
e AS (
    SELECT e.*, row_number() OVER (ORDER BY e.seq) AS n
    FROM consent_events e JOIN r ON e.tenant_id = r.tenant_id AND e.interaction_id = r.id
),
kv(k, v) AS (
    SELECT 'tenant', tenant_id FROM r
    UNION ALL SELECT 'receipt', jws FROM r
    UNION ALL SELECT 'property', property_id FROM e WHERE n = 1
    UNION ALL SELECT 'uihash', ui_hash FROM e WHERE n = 1
    UNION ALL SELECT 'ctime', client_time::text FROM e WHERE n = 1
    UNION ALL SELECT 'k' || n, purpose_key FROM e
    UNION ALL SELECT 'vh' || n, version_hash FROM e
    UNION ALL SELECT 'th' || n, text_hash FROM e
    UNION ALL SELECT 'd' || n, decision FROM e
    UNION ALL SELECT 'p' || e.n, p.id FROM e JOIN purposes p ON p.tenant_id = e.tenant_id AND p.key = e.purpose_key
    -- The stored answer is encrypted (binary): it goes in as bytea hex input, like the secret.
    UNION ALL (SELECT 'response', '\x' || encode(response, 'hex') FROM idempotency_keys
               WHERE route = '/v1/consents' ORDER BY expires_at DESC LIMIT 1)
    UNION ALL (SELECT 'payload', payload FROM domain_events WHERE payload LIKE '%"method":"banner_custom"%'
               ORDER BY created_at DESC LIMIT 1)
    UNION ALL (SELECT 'secret', '\x' || encode(secret, 'hex') FROM subjects WHERE kind = 'device' AND secret IS NOT NULL LIMIT 1)
    UNION ALL (SELECT 'kid_enc', secret_kid FROM subjects WHERE kind = 'device' AND secret IS NOT NULL LIMIT 1)
    UNION ALL (SELECT 'value_ct', '\x' || encode(value_ct, 'hex') FROM identifiers WHERE kind = 'device' LIMIT 1)
    UNION ALL (SELECT 'kid_lookup', hash_kid FROM identifiers WHERE kind = 'device' LIMIT 1)
)
SELECT k || '=' || v FROM kv;
