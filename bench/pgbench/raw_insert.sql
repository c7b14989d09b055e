-- raw_insert_tps (bench/run.sh): one single-row INSERT per transaction, for scale: what this
-- machine's PostgreSQL does when every commit is one tiny durable write.
\set id random(1, 9223372036854775806)
INSERT INTO bench_raw (id, created_at, v) VALUES (:id, :now, 'x');
