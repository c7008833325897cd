-- One step of a fleet's shared limiter (redisretry): report what one process
-- saw since its last step, close the fleet's decision periods that ended,
-- and lease up to `want` send slots from the fleet's line.
--
-- KEYS[1]  the limiter's hash
-- ARGV     acc thr waited want interval_us calm_after_us headroom probe beta
--          burst_us ttl_ms lease_us   (slots leased count as sent)
-- Returns  {rate (string), calm (0/1), first slot (µs from now), spacing (µs),
--           slots leased, repaired (0/1), the line's next free slot (µs from
--           now)}
--
-- The law is Goodput's (github.com/jittered/retry, adaptive.go) applied to
-- the fleet's aggregate answers, without the fairness term: one shared line
-- serves every process, so there is no share to converge to. Time is the
-- server's (TIME), common to every process.

local key = KEYS[1]
local acc, thr, waited, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local P, calmAfter = tonumber(ARGV[5]), tonumber(ARGV[6])
local H, probe, beta = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local burst, ttl, lease = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- State found in Redis is checked, never trusted: a key of another type,
-- or a field that is not a finite number in its range, starts the limiter
-- afresh (calm) and says so.
local repaired = 0
local kt = redis.call('TYPE', key)
if type(kt) == 'table' then kt = kt['ok'] end
if kt ~= 'hash' and kt ~= 'none' then
  redis.call('DEL', key)
  repaired = 1
end
local fields = {'rate', 'tat', 'ps', 'acc', 'thr', 'sent', 'wait', 'meas', 'frac', 'quiet', 'lthr', 'lans', 'first',
  'refused', 'cacc', 'cps', 'crate', 'cum', 'cumd', 'pacc', 'peak'}
local raw = redis.call('HMGET', key, unpack(fields))
local s = {}
local fresh = true
for i, f in ipairs(fields) do
  local v = raw[i]
  if v then
    fresh = false
    local n = tonumber(v)
    if n == nil or n ~= n or n == math.huge or n == -math.huge or n < 0 then
      repaired = 1
      s = nil
      break
    end
    s[f] = n
  end
end
if s == nil or fresh then
  if s == nil then redis.call('DEL', key) end
  s = {rate = 0, tat = 0, ps = now, acc = 0, thr = 0, sent = 0, wait = 0, meas = 0, frac = 0, quiet = 0,
    lthr = now, lans = now, first = 0, refused = 0, cacc = 0, cps = now, crate = 0, cum = 0, cumd = 0, pacc = 0, peak = 0}
end
for _, f in ipairs(fields) do
  if s[f] == nil then s[f] = 0 end
end

local function setRate(r)
  if r ~= r or r < 0.05 then r = 0.05 end
  if r > 1e9 then r = 1e9 end
  s.rate = r
end

-- Close one period of length P that ended at `fin`.
local function decide(fin)
  local r = s.rate
  local n = s.acc + s.thr
  -- The rate binds if a caller waited for the line, or if the fleet used
  -- (leased, or was answered for) most of what the rate allowed: leases
  -- run ahead in batches and answers come late, so either may show it.
  local binding = s.wait > 0 or math.max(s.sent, n) >= 0.8 * r * P / 1e6
  local f = 0
  if n > 0 then
    f = s.thr / n
    local w = n / (n + 50)
    s.frac = s.frac + w * (f - s.frac)
  end
  local first = s.first == 1
  local wave = first and n > 2 * math.max(s.sent, r * P / 1e6, 2)
  s.first = 0
  local sec = P / 1e6
  if s.thr > 0 and s.meas == 0 then
    if s.acc > 0 and not wave then
      setRate(s.acc / sec * (1 + H))
      s.frac = H / (1 + H)
      if math.max(s.sent, r * sec) >= 1 then s.meas = 1 end
    elseif first then
      setRate(beta * math.max(r, n / sec))
    elseif s.cum > 0 then
      setRate(s.cum / (s.cumd + sec) * (1 + H))
      s.frac = H / (1 + H)
      s.meas = 1
    else
      setRate(beta * r)
    end
    if s.acc == 0 then s.refused = s.rate end
    s.quiet = 0
    s.lthr = fin
  elseif s.thr > 0 then
    -- Send Headroom above what the service accepted. The fleet hears
    -- answers up to a quarter period late, so a period's accepted count is
    -- taken with the previous one's (the larger): a cut from one short
    -- count, then another from the late throttles, cut the rate to a third
    -- of the capacity, and probing back took seconds. A throttle never
    -- raises the rate, and one period cuts at most to Beta of it.
    local accepted = math.max(s.acc, s.pacc) / sec
    setRate(math.max(math.min(r, accepted * (1 + H)), beta * r))
    s.peak = accepted
    s.quiet = 0
    s.lthr = fin
  elseif not binding then
    if fin - s.lthr >= calmAfter then
      s.rate = 0 -- calm: the fleet stops limiting
      s.cacc, s.cps, s.crate = 0, fin, 0
    end
  elseif s.meas == 0 and s.acc > 0 then
    setRate(r * 2)
  elseif s.acc == 0 and r * sec < 1 and fin - s.lans >= 1000000 then
    setRate(math.min(r * (1 + probe * 10), 1 / sec))
  elseif s.meas == 0 and n == 0 then
    setRate(math.min(r * 2, math.max(r, s.refused)))
  elseif s.acc == 0 then
    -- no evidence either way
  elseif r < s.peak then
    -- Below what the service last accepted while throttling: close half
    -- the gap per period (probing from 1 % took seconds to get back).
    s.quiet = 0
    setRate(r + (s.peak - r) / 2)
  else
    s.quiet = s.quiet + 1
    local g = probe * 2 ^ (s.quiet - 1)
    g = math.max(g, probe * 10 / (r * sec))
    setRate(r * (1 + math.min(g, 1)))
  end
  if s.meas == 1 or first then
    s.cum, s.cumd = 0, 0
  elseif binding or n > 0 then
    s.cum = s.cum + s.acc
    s.cumd = s.cumd + sec
  end
  s.pacc = s.acc
  s.acc, s.thr, s.sent, s.wait = 0, 0, 0, 0
end

if s.rate == 0 then
  -- Calm: count accepted answers to start from when throttling begins.
  s.cacc = s.cacc + acc
  if now - s.cps >= 1000000 then
    s.crate = s.cacc / ((now - s.cps) / 1e6)
    s.cacc, s.cps = 0, now
  end
  if thr > 0 then
    local cur = s.cacc / math.max((now - s.cps) / 1e6, P / 1e6)
    setRate(math.max(s.crate, cur))
    s.meas, s.first, s.frac, s.refused, s.quiet = 0, 1, 0, 1e9, 0
    s.ps, s.lthr, s.tat = now, now, now
    s.acc, s.thr, s.sent, s.wait, s.cum, s.cumd = 0, 0, 0, 0, 0, 0
  end
end
local before = s.rate
if s.rate > 0 then
  -- Close the periods that ended (a long silence is one quiet period).
  local k = 0
  while now >= s.ps + P and s.rate > 0 do
    decide(s.ps + P)
    s.ps = s.ps + P
    k = k + 1
    if now - s.ps > 2 * P then s.ps = now end
  end
  if s.rate > 0 then
    s.acc = s.acc + acc
    s.thr = s.thr + thr
    if waited > 0 then s.wait = 1 end
  end
  if acc + thr > 0 then s.lans = now end
end

-- The line ahead of now was spaced at the old rate: respace it at the new
-- one, so that a rate that rose is used at once (and one that fell is not
-- overrun by slots granted before).
if s.rate > 0 and before > 0 and s.rate ~= before and s.tat > now then
  s.tat = now + (s.tat - now) * before / s.rate
end

-- Lease slots from the fleet's line (GCRA): slot i begins at tat + i·spacing;
-- up to `burst` of unused rate is credit. No slot is leased that begins more
-- than one period ahead (the line is that long when the processes have more
-- callers than the rate serves): the caller comes back then. Slots leased
-- far ahead keep the spacing of the rate they were leased at: with leases
-- up to four periods ahead, throttles went on for that long after each cut
-- (8 processes: 1.15× ideal, against 1.01× with one period).
local first, spacing, got = 0, 0, 0
if s.rate > 0 and want > 0 then
  spacing = 1e6 / s.rate
  s.tat = math.max(s.tat, now - burst)
  first = s.tat - now
  if first <= P then
    local most = math.max(1, math.floor(s.rate * lease / 1e6))
    got = math.min(want, most)
    s.tat = s.tat + got * spacing
    s.sent = s.sent + got
  end
end

local out = {}
for _, f in ipairs(fields) do
  out[#out + 1] = f
  out[#out + 1] = string.format('%.17g', s[f])
end
redis.call('HSET', key, unpack(out))
redis.call('PEXPIRE', key, ttl)
local calm = 0
if s.rate == 0 then calm = 1 end
return {string.format('%.17g', s.rate), calm, string.format('%.17g', first), string.format('%.17g', spacing), got, repaired,
  string.format('%.17g', s.tat - now)}
