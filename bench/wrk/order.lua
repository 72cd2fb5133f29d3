-- POST /Order of 1 for pre-funded users, each with its own API key, in turn:
--   wrk ... -s order.lua <url> -- <user prefix> <users> <key of user 0> <key of user 1> ...
dofile("report.lua")

local prefix, users, keys, next_user

function init(args)
  prefix = args[1]
  users = tonumber(args[2])
  keys = {}
  for n = 0, users - 1 do
    keys[n] = args[3 + n]
  end
  -- Threads start at different users so that they do not all debit the same account at once.
  next_user = math.random(0, users - 1)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_user = (next_user + 1) % users
  local body = string.format('{"user":"%s-%d","sum":1}', prefix, next_user)
  wrk.headers["Authorization"] = "Bearer " .. keys[next_user]
  return wrk.format(nil, nil, nil, body)
end
