/**
 * The atomic "release up to K next executions" step of a job, and the lease that keeps one process
 * releasing at a time. The step re-checks the hard limits itself (in-flight count, the last minute's
 * releases, the job still running, the caller still holding the lease), so several controllers,
 * stale snapshots or a paused process can never release more than the limits allow.
 */

/**
 * KEYS: job hash, release order list, executions hash, in-flight set, retry zset, release log zset,
 *       unconfirmed zset, lease.
 * ARGV: now ms, rate window ms, perMinute (0: none), maxConcurrent (0: none), order limit (the cursor
 *       stays below it), budget, lease token ('' skips the check), wave to record ('' keeps it),
 *       pace window ms, releases allowed per pace window.
 * Due retries go first, then the release order from the cursor; entries whose execution is no longer
 * `queued` (canceled meanwhile) are skipped. Each released one joins the in-flight set, the release
 * log (when perMinute is set) and the unconfirmed set (until it is in the queue).
 * Returns {released, skipped, deviceId1, retries1, deviceId2, retries2, …}, or {-1} without the
 * lease, {-2} when the job is no longer running.
 */
export const RELEASE_EXECUTIONS = `
if ARGV[7] ~= '' and redis.call('GET', KEYS[8]) ~= ARGV[7] then return {-1} end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'in_progress' then return {-2} end
if ARGV[8] ~= '' then redis.call('HSET', KEYS[1], 'wave', ARGV[8]) end
local now = tonumber(ARGV[1])
local perMinute = tonumber(ARGV[3])
local maxConcurrent = tonumber(ARGV[4])
local allowed = tonumber(ARGV[6])
if maxConcurrent > 0 then allowed = math.min(allowed, maxConcurrent - redis.call('SCARD', KEYS[4])) end
if perMinute > 0 then
  -- The window is (now - window, now]: a release exactly one window ago no longer counts.
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now - tonumber(ARGV[2]))
  allowed = math.min(allowed, perMinute - redis.call('ZCARD', KEYS[6]))
  allowed = math.min(allowed, tonumber(ARGV[10]) - redis.call('ZCOUNT', KEYS[6], '(' .. (now - tonumber(ARGV[9])), '+inf'))
end
if allowed <= 0 then return {0, 0} end
local out = {0, 0}
local skipped = 0
local function take(dev)
  local raw = redis.call('HGET', KEYS[3], dev)
  if not raw then skipped = skipped + 1 return end
  local rec = cjson.decode(raw)
  if rec.state ~= 'queued' or redis.call('SISMEMBER', KEYS[4], dev) == 1 then skipped = skipped + 1 return end
  local retries = tonumber(rec.retries) or 0
  local member = dev .. '|' .. retries
  redis.call('SADD', KEYS[4], dev)
  redis.call('HINCRBY', KEYS[1], 'inflight', 1)
  if perMinute > 0 then redis.call('ZADD', KEYS[6], now, member) end
  redis.call('ZADD', KEYS[7], now, member)
  out[#out + 1] = dev
  out[#out + 1] = retries
end
local released = function() return (#out - 2) / 2 end
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, allowed)
for _, dev in ipairs(due) do
  redis.call('ZREM', KEYS[5], dev)
  take(dev)
end
local cursor = tonumber(redis.call('HGET', KEYS[1], 'next') or '0')
local limit = math.min(tonumber(ARGV[5]), redis.call('LLEN', KEYS[2]))
while released() < allowed and cursor < limit do
  local want = math.min(allowed - released(), limit - cursor)
  local chunk = redis.call('LRANGE', KEYS[2], cursor, cursor + want - 1)
  for _, dev in ipairs(chunk) do
    cursor = cursor + 1
    take(dev)
  end
end
redis.call('HSET', KEYS[1], 'next', cursor)
out[1] = released()
out[2] = skipped
return out
`;

/** KEYS: lease. ARGV: token. Deletes the lease only if this token still holds it. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
