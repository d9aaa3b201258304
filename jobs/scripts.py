"""The queue's Lua scripts: what must happen for a whole batch in one atomic round trip.

Kept apart from :mod:`jobs.queue` because they are a second language with their own
argument layouts; each script's comment states its KEYS and ARGV.
"""

# A worker takes a batch of jobs, in one round trip: each attempt is counted and each job not
# yet final is marked processing. A record that expired is not resurrected by HINCRBY's stub.
# KEYS: the records. ARGV: worker name, now (ms). Returns each record (HGETALL) or {} if gone.
START = """
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'attempts', 1)
  if redis.call('HLEN', key) <= 1 then
    redis.call('DEL', key)
    out[i] = {}
  else
    local status = redis.call('HGET', key, 'status')
    if status ~= 'done' and status ~= 'failed' and status ~= 'not_assessable' then
      redis.call('HSET', key, 'status', 'processing', 'started_at', ARGV[2], 'worker', ARGV[1])
    end
    out[i] = redis.call('HGETALL', key)
  end
end
return out
"""

# Writes a batch's results and acknowledges its jobs, in one round trip. Each job is marked
# done exactly once: a reclaimed job whose first worker finished after all is not written
# twice. KEYS: the stream, then per job its record and its cache key ('' for none).
# ARGV: group, cache ttl, then per job: entry id, prediction id, n, n field/value pairs.
# Returns per job 1 if written, 0 if it was already final.
FINISH = """
local out, a = {}, 3
for j = 1, (#KEYS - 1) / 2 do
  local record, cache = KEYS[2 * j], KEYS[2 * j + 1]
  local n = tonumber(ARGV[a + 2])
  local status = redis.call('HGET', record, 'status')
  if status == false or status == 'done' or status == 'failed' or status == 'not_assessable' then
    out[j] = 0
  else
    redis.call('HDEL', record, 'error')
    for i = a + 3, a + 1 + 2 * n, 2 do redis.call('HSET', record, ARGV[i], ARGV[i + 1]) end
    if cache ~= '' then redis.call('SET', cache, ARGV[a + 1], 'EX', tonumber(ARGV[2])) end
    out[j] = 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[a])
  a = a + 3 + 2 * n
end
return out
"""


# What a worker writes when a job is done (the rest of the record is the API's).
RESULT_FIELDS = (
    "status",
    "finished_at",
    "label",
    "probability",
    "threshold",
    "model_version",
    "cached",
    "error",
    "reason",
    "worker",
)

# Store one Grad-CAM result (jobs.heatmaps) so it expires with its image.
# KEYS: image, heatmap, asked. ARGV: cap_ms (0: none), field, value, field, value...
# The heatmap takes the image's remaining TTL (capped at cap_ms); nothing is stored once the
# image has expired, so no heatmap outlives the X-ray it was drawn on. The request marker goes.
STORE_HEATMAP = """
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[3])
if ttl == -2 then return 0 end
local cap = tonumber(ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
if cap > 0 and (ttl < 0 or ttl > cap) then
  redis.call('PEXPIRE', KEYS[2], cap)
elseif ttl > 0 then
  -- the image's own expiry instant, not now + its PTTL: the two can differ by a millisecond
  redis.call('PEXPIREAT', KEYS[2], redis.call('PEXPIRETIME', KEYS[1]))
end
return 1
"""
