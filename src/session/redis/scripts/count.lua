-- Count live and anonymous sessions among a batch of session keys, without
-- sending the records back (the admin /stats and /metrics).
-- KEYS = <prefix>sess:<key>, ...
-- Returns {live, anonymous}.
local live, anonymous = 0, 0
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then
    live = live + 1
    if type(cjson.decode(v).user) ~= 'string' then anonymous = anonymous + 1 end
  end
end
return {live, anonymous}
