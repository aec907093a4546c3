/**
 * Lua scripts: every change of an execution is one atomic step in Redis (record, job counts,
 * job state, device lock, log line), so no reader ever sees half a transition.
 */

/**
 * What every write of an execution checks first, and refuses with: the stored record is missing,
 * terminal or as new as this one (seq), or the job is aborted and the execution not past the point
 * of no return (only its end may be written then). KEYS[1] job hash, KEYS[2] executions hash;
 * ARGV[1] deviceId, ARGV[3] record seq, ARGV[4] record state. Leaves `rec`, `terminal`, `newState`,
 * `jobState` for the script that follows.
 */
const EXECUTION_WRITE_CHECKS = `
local function given(v) return v ~= nil and v ~= cjson.null and v ~= false end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur then return {0, 'missing'} end
local rec = cjson.decode(cur)
local terminal = {succeeded=true, failed=true, timed_out=true, rejected=true, canceled=true}
if terminal[rec.state] then return {0, 'terminal'} end
if tonumber(rec.seq) >= tonumber(ARGV[3]) then return {0, 'stale'} end
local newState = ARGV[4]
local jobState = redis.call('HGET', KEYS[1], 'state')
if jobState == 'aborted' and not terminal[newState] and not (given(rec.installSentAt) or given(rec.installAccepted)) then
  return {0, 'aborted', redis.call('HGET', KEYS[1], 'abortReason') or 'aborted'}
end`;

/**
 * KEYS: job hash, executions hash, events list, device lock, devices hash, device history list,
 *       job in-flight set, job retry zset, job canary set, the site's waiters set.
 * ARGV: deviceId, record JSON, record seq, record state, event JSON ('' for none), now ISO, executionId,
 *       history entry JSON and lastUpdate JSON ('' unless terminal), new installed version ('' for none), history limit,
 *       error code ('' for none), retry due time in ms ('' unless re-queued), rollout channel ('' for none), jobId,
 *       waiter entry `<retry zset key>|<jobId>|<deviceId>` ('' unless re-queued to wait for its busy site), now in ms.
 * Returns {1, eventJSON|'', deviceJSON|'', jobHashFlat...} or {0, reason} when the write is stale or the
 * record is terminal, or {0, 'aborted', abortReason} when the job is aborted and the execution is not past
 * the point of no return (no install sent or accepted): only an end may be written then, so an abort
 * interrupted midway (its process died) or racing a worker can never let an install go out.
 * The job hash comes back only when the execution's state changed: nothing else a job summary shows
 * (counts, error counts, slots, job state) changes, and a progress report or a phase change (with its
 * log line) is most of the writes.
 * A terminal execution updates the device's record and history in the same step, counts its error
 * code (`e:<code>`) and its canary wave result, and frees its rollout slot.
 * An execution going back to `queued` (a retry after a transient failure) frees its slot and device
 * lock and waits in the retry zset. Either way the rollout channel hears the job id.
 * One that waits for its busy site also joins the site's waiters; an execution of the site that frees
 * its device lock (ends, or is re-queued) makes every waiter due at once (its retry zset score → now,
 * its job id on the rollout channel) and empties the set: a waiter looks again when the site may have
 * become free instead of at the end of its pause. Entries of executions no longer waiting (released,
 * canceled) are skipped; the set expires a day after its last entry.
 */
export const UPDATE_EXECUTION = `${EXECUTION_WRITE_CHECKS}
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if rec.state ~= newState then
  redis.call('HINCRBY', KEYS[1], 'c:' .. rec.state, -1)
  redis.call('HINCRBY', KEYS[1], 'c:' .. newState, 1)
end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[6])
if jobState == 'queued' and newState ~= 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'startedAt', ARGV[6])
  jobState = 'in_progress'
end
local requeued = newState == 'queued' and rec.state ~= 'queued'
local released = false
-- Frees the device lock if this execution holds it (then the site's waiters are woken below).
local function releaseLock()
  if redis.call('GET', KEYS[4]) == ARGV[7] then
    redis.call('DEL', KEYS[4])
    released = true
  end
end
if terminal[newState] or requeued then
  if redis.call('SREM', KEYS[7], ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[1], 'inflight', -1) end
end
if requeued then
  releaseLock()
  redis.call('ZADD', KEYS[8], tonumber(ARGV[13]) or 0, ARGV[1])
  redis.call('HINCRBY', KEYS[1], 'retries', 1)
  if ARGV[16] ~= '' then
    redis.call('SADD', KEYS[10], ARGV[16])
    redis.call('EXPIRE', KEYS[10], 86400)
  end
end
local device = ''
if terminal[newState] then
  releaseLock()
  redis.call('ZREM', KEYS[8], ARGV[1])
  if ARGV[12] ~= '' then redis.call('HINCRBY', KEYS[1], 'e:' .. ARGV[12], 1) end
  if redis.call('SISMEMBER', KEYS[9], ARGV[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'w:done', 1)
    if newState == 'succeeded' then redis.call('HINCRBY', KEYS[1], 'w:ok', 1) end
  end
  if ARGV[8] ~= '' then
    redis.call('LPUSH', KEYS[6], ARGV[8])
    redis.call('LTRIM', KEYS[6], 0, tonumber(ARGV[11]) - 1)
  end
  local cur = redis.call('HGET', KEYS[5], ARGV[1])
  if cur then
    local d = cjson.decode(cur)
    d.lastUpdate = cjson.decode(ARGV[9])
    if ARGV[10] ~= '' then
      d.version = ARGV[10]
      d.online = true
      d.lastSeenAt = ARGV[6]
    end
    device = cjson.encode(d)
    redis.call('HSET', KEYS[5], ARGV[1], device)
  end
  local h = redis.call('HMGET', KEYS[1], 'total', 'c:succeeded', 'c:failed', 'c:timed_out', 'c:rejected', 'c:canceled')
  local done = 0
  for i = 2, 6 do done = done + tonumber(h[i] or '0') end
  if done >= tonumber(h[1]) then
    if jobState ~= 'aborted' then redis.call('HSET', KEYS[1], 'state', 'completed') end
    redis.call('HSET', KEYS[1], 'finishedAt', ARGV[6])
  end
end
local ev = ''
if ARGV[5] ~= '' then
  local seq = redis.call('HINCRBY', KEYS[1], 'eventSeq', 1)
  ev = '{"seq":' .. seq .. ',' .. string.sub(ARGV[5], 2)
  redis.call('RPUSH', KEYS[3], ev)
end
if (terminal[newState] or requeued) and ARGV[14] ~= '' then redis.call('PUBLISH', ARGV[14], ARGV[15]) end
local waiters = released and redis.call('SMEMBERS', KEYS[10]) or {}
if #waiters > 0 then
  local now = tonumber(ARGV[17])
  for _, entry in ipairs(waiters) do
    local retries, job, dev = string.match(entry, '^([^|]*)|([^|]*)|(.*)$')
    local due = retries and redis.call('ZSCORE', retries, dev)
    if due and tonumber(due) > now then
      redis.call('ZADD', retries, now, dev)
      if ARGV[14] ~= '' then redis.call('PUBLISH', ARGV[14], job) end
    end
  end
  redis.call('DEL', KEYS[10])
end
local out = {1, ev, device}
if rec.state ~= newState then
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat do out[#out + 1] = flat[i] end
end
return out
`;

/**
 * The short form of UPDATE_EXECUTION for a write that keeps the execution's state and has no log
 * line (a progress report: about half of all writes). For such a write UPDATE_EXECUTION does only
 * this (no count, lock, slot, device or waiter changes; no job summary back), from 5 arguments
 * instead of 17 and 2 keys instead of 10. A write whose state differs from the stored one is refused
 * with {0, 'changed'}, for UPDATE_EXECUTION to do.
 * KEYS: job hash, executions hash. ARGV: deviceId, record JSON, record seq, record state, now ISO.
 * Returns {1} or UPDATE_EXECUTION's refusals.
 */
export const UPDATE_PROGRESS = `${EXECUTION_WRITE_CHECKS}
if rec.state ~= newState then return {0, 'changed'} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'updatedAt', ARGV[5])
if jobState == 'queued' and newState ~= 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'startedAt', ARGV[5])
end
return {1}
`;

/**
 * KEYS: job hash, events list. ARGV: event JSON without seq.
 * Returns the stored event JSON (with its seq).
 */
export const APPEND_EVENT = `
local seq = redis.call('HINCRBY', KEYS[1], 'eventSeq', 1)
local ev = '{"seq":' .. seq .. ',' .. string.sub(ARGV[1], 2)
redis.call('RPUSH', KEYS[2], ev)
return ev
`;

/**
 * KEYS: the device's lock, then the locks of the devices of its site that may not update alongside it
 * (the GX for a product; the products for the GX). ARGV: executionId.
 * Returns {} when this execution holds the device's lock (now or already); {'device', holder} when
 * another execution holds it; {'site', holder, key} when none of that but another execution holds one
 * of the site's locks (then the device's lock is not taken).
 */
export const ACQUIRE_LOCK = `
local own = redis.call('GET', KEYS[1])
if own == ARGV[1] then return {} end
if own then return {'device', own} end
for i = 2, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder then return {'site', holder, KEYS[i]} end
end
redis.call('SET', KEYS[1], ARGV[1])
return {}
`;

/**
 * KEYS: device lock. ARGV: expected holder, new holder ('' to free it). Replaces (or frees) a dead
 * holder's lock atomically.
 */
export const STEAL_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
  return 1
end
return 0
`;

/**
 * KEYS: job hash. ARGV: now ISO, reason.
 * Marks a running (queued or in_progress) job aborted with its reason; returns 0 when it is missing
 * or already finished, so two aborts racing (operator and rollout rule) abort once.
 */
export const ABORT_JOB = `
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'queued' and state ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'aborted', 'updatedAt', ARGV[1], 'abortedAt', ARGV[1], 'abortReason', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seq', 1)
return 1
`;
