-- Count live and anonymous sessions among a batch of session keys, and name
-- their users once each, without sending the records back (the admin /stats,
-- /metrics and page).
-- KEYS = <prefix>sess:<key>, ...
-- Returns {live, anonymous, {user, ...}} (each user once per batch).
local live, anonymous = 0, 0
local seen, users = {}, {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then
    live = live + 1
    local user = cjson.decode(v).user
    if type(user) ~= 'string' then
      anonymous = anonymous + 1
    elseif not seen[user] then
      seen[user] = true
      users[#users + 1] = user
    end
  end
end
return {live, anonymous, users}
