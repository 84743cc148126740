-- Add a new session to its user's index as pending ("~<key>"), drop the
-- index's dead entries, and name the user's oldest confirmed sessions past
-- max_per_user, which the caller then ends: their records first, their index
-- entries after. A pending entry is never named: its record may not be written
-- yet, and deleting nothing then would leave it live and, once its entry was
-- removed, outside the index. confirm.lua turns it into "<key>" once the
-- record exists. So a live session always has an entry (revoke-all reads the
-- index), whatever two logins of one user do at once or where an instance dies.
-- KEYS[1] = <prefix>user:<name>
-- ARGV[1] = the new session's absolute expiry (its score)   ARGV[2] = its key (hex)
-- ARGV[3] = now (ms): entries scored at or below it are dead   ARGV[4] = max_per_user
-- Returns the keys to end, oldest first.
redis.call('ZADD', KEYS[1], ARGV[1], '~' .. ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
local ended = {}
if over > 0 then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if #ended >= over then break end
    if string.sub(m, 1, 1) ~= '~' then ended[#ended + 1] = m end
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return ended
