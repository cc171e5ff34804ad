-- wrk script: etcd's v3 JSON gateway range request for one key (the counterpart of a single-key
-- GET). BENCH_KEY_B64 is the key, base64 encoded.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key": "' .. (os.getenv("BENCH_KEY_B64") or "") .. '"}'
