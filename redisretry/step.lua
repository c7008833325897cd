-- One step of a fleet's shared limiter (redisretry): report what one process
-- saw since its last step, close the fleet's decision periods that ended,
-- and lease up to `want` send slots from the fleet's line.
--
-- KEYS[1]  the limiter's hash
-- ARGV     acc thr acc_after thr_after bound waited want starved_us
--          interval_us calm_after_us headroom probe beta burst_us ttl_ms
--          lease_us (answers counted before and after `bound`, the end of
--          the fleet's open period as the process last heard it, in the
--          server's µs; slots leased count as sent; starved: how long the
--          process has gone without a slot)
-- Returns  {rate (string), calm (0/1), first slot (µs from now), spacing (µs),
--           slots leased, repaired (0/1), the line's next free slot (µs from
--           now), the open period's end (server µs; 0 while calm), that end
--           (µs from now)}
--
-- The law is Goodput's (github.com/jittered/retry, adaptive.go) applied to
-- the fleet's aggregate answers, without the fairness term: one shared line
-- serves every process, so there is no share to converge to. Time is the
-- server's (TIME), common to every process.

local key = KEYS[1]
local acc1, thr1, acc2, thr2 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local bound, waited, want, starved = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local P, calmAfter = tonumber(ARGV[9]), tonumber(ARGV[10])
local H, probe, beta = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local burst, ttl, lease = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local acc, thr = acc1 + acc2, thr1 + thr2

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
  'refused', 'cacc', 'cps', 'crate', 'cum', 'cumd', 'peak', 'nacc', 'nthr', 'nsent', 'nwait', 'pfull', 'qa', 'pend', 'pacc', 'pmeas', 'prate', 'capcut', 'qsum'}
local raw = redis.call('HMGET', key, unpack(fields))
local s = {}
local fresh = true
for i, f in ipairs(fields) do
  local v = raw[i]
  if v then
    fresh = false
    local n = tonumber(v)
    -- qsum alone may be negative (what the service accepted below the
    -- measure), down to a period of the rate.
    if n == nil or n ~= n or n == math.huge or n == -math.huge or (n < 0 and f ~= 'qsum') then
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
    lthr = now, lans = now, first = 0, refused = 0, cacc = 0, cps = now, crate = 0, cum = 0, cumd = 0, peak = 0,
    nacc = 0, nthr = 0, nsent = 0, nwait = 0}
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
  local measured, capcut = 0, 0
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
  local full = n >= 0.9 * r * P / 1e6
  local wave = first and n > 2 * math.max(s.sent, r * P / 1e6, 2)
  s.first = 0
  local sec = P / 1e6
  -- qsum: what the service accepted beyond the last measure since the
  -- last throttle, less what it accepted below it (down to a period of
  -- the measure: the service's bucket refills only so far). Positive, it
  -- is evidence of capacity above the measure; quiet periods alone are
  -- not (below).
  if s.thr > 0 then
    s.qsum = 0
  elseif s.peak > 0 then
    s.qsum = math.max(s.qsum + s.acc - s.peak * sec, -s.peak * sec)
  end
  if s.thr > 0 and s.meas == 0 then
    if s.acc > 0 and not wave then
      setRate(s.acc / sec * (1 + H))
      s.frac = H / (1 + H)
      if math.max(s.sent, r * sec) >= 1 then s.meas = 1 end
    elseif first then
      setRate(beta * math.max(r, n / sec))
      s.peak = s.acc / sec
    elseif s.cum > 0 then
      setRate(s.cum / (s.cumd + sec) * (1 + H))
      s.frac = H / (1 + H)
      s.meas = 1
    else
      setRate(beta * r)
    end
    if s.acc == 0 then s.refused = s.rate end
    s.quiet, s.qa = 0, 0
    s.lthr = fin
  elseif s.thr > 0 then
    -- Send Headroom above what the service accepted (counted in the
    -- period the answers came in: the larger of two periods' counts, taken
    -- while reports were counted where they arrived, held the rate above
    -- capacity for two more periods after a burst). A throttle never
    -- raises the rate (but for the remeasure below), and one period cuts
    -- at most to Beta of it.
    local accepted = s.acc / sec
    -- The fleet carried its rate: 95 % of it answered (counts are noisy
    -- by ±10 % with 16 processes; a period with a hole read as a measure,
    -- 166 answers and 1 throttle, cut 16 processes to 0.92 of capacity).
    local carried = n >= 0.95 * r * sec
    if carried and s.quiet == 0 and s.pmeas == 1 and s.acc >= 0.7 * s.pacc and s.acc <= 1.3 * s.pacc then
      -- Two measuring periods in a row: the mean of their counts. A
      -- process whose report reaches the next period (it ran late: 16
      -- processes on 2 cores) moves its answers from one period's count to
      -- the next's, ±20–45 of 200; their sum cancels it. Averaging with
      -- the last measure instead (taken seconds before, and low) dragged
      -- each new one down: 16 processes sat at 0.91–0.97 of capacity,
      -- grew on the quiet and overshot every 3–4 s. A larger move (a drop
      -- to a quarter) is taken at once; the first wave's count (the
      -- service's saved burst: 1.4× capacity) measures nothing.
      accepted = (s.acc + s.pacc) / (2 * sec)
    end
    local to = accepted * (1 + H)
    if s.quiet > 0 and s.peak > 0 and accepted < 1.2 * s.peak and s.peak * (1 + H) < to then
      -- The first throttle after growing: what this period accepted holds
      -- the service's saved burst, which the growth was spending; the
      -- last measure is the better one (cutting to this period's count
      -- kept 16 processes 10 % over capacity for another period). The
      -- next period measures again (capcut).
      to = s.peak * (1 + H)
      if to < r then capcut = r end
    end
    if not carried then
      -- The fleet sent less than its rate: what was accepted does not
      -- measure the service (a short count cut 1000/s to 780/s on one
      -- throttle of 152 answers); cut by the share refused instead.
      to = math.max(to, r * (1 - f))
    elseif s.quiet == 0 then
      -- Never above what was sent, at this period's rate or the one
      -- before (answers come after their sends: the period after a cut
      -- is answered for sends at the rate before it). More accepted
      -- answers than that are a count's noise or the service's burst.
      s.peak = math.min(accepted, math.max(r, s.prate))
      measured = 1
    end
    if measured == 1 and s.capcut > 0 and to > r then
      -- The period before cut to the last measure; this one measured the
      -- service again, and its measure replaces that one, up to the rate
      -- cut from. Kept, a low old measure held 16 processes below
      -- capacity until they grew again into an overshoot.
      setRate(math.min(to, s.capcut))
    else
      setRate(math.max(math.min(r, to), beta * r))
    end
    s.quiet, s.qa = 0, 0
    s.lthr = fin
  elseif not binding then
    if fin - s.lthr >= calmAfter then
      s.rate = 0 -- calm: the fleet stops limiting
      s.cacc, s.cps, s.crate = 0, fin, 0
    end
  elseif s.meas == 0 and s.acc > 0 then
    if s.peak > 0 and r * 2 >= s.peak then
      setRate(math.max(r, s.peak))
      s.meas = 1
    else
      setRate(r * 2)
    end
  elseif s.acc == 0 and r * sec < 1 and fin - s.lans >= 1000000 then
    setRate(math.min(r * (1 + probe * 10), 1 / sec))
  elseif s.meas == 0 and n == 0 then
    setRate(math.min(r * 2, math.max(r, s.refused)))
  elseif s.acc == 0 then
    -- no evidence either way
  elseif r < s.peak * (1 - probe) then
    -- Below what the service last accepted while throttling: close half
    -- the gap per period (probing from 1 % took seconds to get back).
    s.quiet, s.qa = 0, 0
    setRate(r + (s.peak - r) / 2)
  elseif not full or s.pfull == 0 then
    -- A period that did not carry its rate (processes late to send: a
    -- hole) lets the service's bucket refill, and the quiet periods right
    -- after it drain that credit: no evidence of more capacity. Growing
    -- on them overshot by 10–25 % a second later (16 processes on 2 cores:
    -- 50–90 throttles per cycle). The quiet count stays: reset, holes
    -- every few periods held the fleet creeping below capacity for good.
  else
    s.quiet = s.quiet + 1
    local q, most = s.quiet, 1
    if r < 1.1 * s.peak and (s.quiet <= 5 or s.qsum < 0.1 * s.peak * sec) then
      -- Near the last measure, creep for a second: the service's saved
      -- burst hides an overshoot for seconds (100 tokens at 1 % over
      -- 1000/s: 10 s), and growth doubling per quiet period ran the fleet
      -- to 1.2× capacity by the time it showed — 50–120 throttles a cycle
      -- with 16 processes. Then grow as below once the service has
      -- accepted a tenth of a period beyond the measure since the last
      -- throttle (qsum): the measure may be low (creeping for good held 16
      -- processes at 0.9 of capacity for 2 s). Quiet periods alone are no
      -- evidence: holes refill the service's bucket, and 16 processes at
      -- the measure went 5 periods without a throttle, grew 5 % a period
      -- and overshot to 1.2× capacity every few seconds.
      most, s.qa = probe, 0
    elseif r < 1.5 * s.peak then
      most, s.qa = 0.05, 0
    else
      -- Far above the last measure the capacity must have grown: grow
      -- exponentially — from Probe again, counted from the crossing (a
      -- fleet that had crept up from a low measure at 5 % a period
      -- doubled at once when it crossed, 466 throttles in a second).
      s.qa = s.qa + 1
      q = s.qa
    end
    local g = probe * 2 ^ (q - 1)
    g = math.max(g, probe * 10 / (r * sec))
    setRate(r * (1 + math.min(g, most)))
  end
  if s.meas == 1 or first then
    s.cum, s.cumd = 0, 0
  elseif binding or n > 0 then
    s.cum = s.cum + s.acc
    s.cumd = s.cumd + sec
  end
  if full then s.pfull = 1 else s.pfull = 0 end
  s.prate, s.pacc, s.pmeas, s.capcut = r, s.acc, measured, capcut
  -- What came in after the period's end, before it closed, is the next's.
  s.acc, s.thr, s.sent, s.wait = s.nacc, s.nthr, s.nsent, s.nwait
  s.nacc, s.nthr, s.nsent, s.nwait = 0, 0, 0, 0
end

if s.rate == 0 then
  -- Calm: count accepted answers to start from when throttling begins.
  s.cacc = s.cacc + acc
  if now - s.cps >= 1000000 then
    s.crate = s.cacc / ((now - s.cps) / 1e6)
    s.cacc, s.cps = 0, now
  end
  if s.pend > 0 and now - s.pend > 2 * P then s.pend = 0 end
  local throttled = thr > 0 or s.pend > 0
  if throttled and s.cacc == 0 and s.crate == 0 and (s.pend == 0 or now - s.pend < P / 4) then
    -- Throttled before any process reported an accepted answer (processes
    -- started together: the first reports are their first throttles).
    -- Starting from nothing held 16 processes at 0.05/s for 300 ms; wait
    -- a quarter period for the others' reports (each throttled process
    -- paces on its own limiter meanwhile).
    if s.pend == 0 then s.pend = now end
  elseif throttled then
    s.pend = 0
    local cur = s.cacc / math.max((now - s.cps) / 1e6, P / 1e6)
    setRate(math.max(s.crate, cur))
    s.meas, s.first, s.frac, s.refused, s.quiet, s.peak = 0, 1, 0, 1e9, 0, 0
    -- nothing measured in this episode yet
    s.pmeas, s.qa, s.pfull, s.qsum, s.capcut, s.prate, s.pacc = 0, 0, 0, 0, 0, 0, 0
    s.ps, s.lthr, s.tat = now, now, now
    s.acc, s.thr, s.sent, s.wait, s.cum, s.cumd = 0, 0, 0, 0, 0, 0
    s.nacc, s.nthr, s.nsent, s.nwait = 0, 0, 0, 0
  end
end
local before = s.rate
if s.rate > 0 then
  -- Each process counts its answers before and after the end of the
  -- open period as it last heard it, and the period closes a quarter
  -- period (the reports' cadence while limiting) after its end: answers
  -- count in the period they came in, not in the one their report
  -- reached. Counted by arrival, a 200 ms period of a 1000/s service read
  -- 70–310 accepted answers (4 processes, each sending its leased slots
  -- in bursts), and the rate went by turns to 0.7 and 1.5 of capacity.
  local fin = s.ps + P
  if bound == fin then
    s.acc, s.thr = s.acc + acc1, s.thr + thr1
    s.nacc, s.nthr = s.nacc + acc2, s.nthr + thr2
  elseif bound > 0 and bound < fin and now > fin then
    -- The process had not heard of the open period: what it counted after
    -- the end it knew is split by time at the open period's end.
    local from = math.max(bound, s.ps)
    local part = 1
    if now > from then part = math.min((fin - from) / (now - from), 1) end
    s.acc, s.thr = s.acc + acc1 + acc2 * part, s.thr + thr1 + thr2 * part
    s.nacc, s.nthr = s.nacc + acc2 * (1 - part), s.nthr + thr2 * (1 - part)
  elseif now > fin then
    s.nacc, s.nthr = s.nacc + acc, s.nthr + thr
  else
    s.acc, s.thr = s.acc + acc, s.thr + thr
  end
  if waited > 0 then
    if now > fin then s.nwait = 1 else s.wait = 1 end
  end
  -- Close the periods that ended (a long silence is one quiet period).
  while now >= s.ps + P + P / 4 and s.rate > 0 do
    decide(s.ps + P)
    s.ps = s.ps + P
    if now - s.ps > 2 * P then s.ps = now end
  end
  if acc + thr > 0 then s.lans = now end
end

-- The line ahead of now was spaced at the old rate: respace it at the new
-- one, so that a rate that rose is used at once (and one that fell is not
-- overrun by slots granted before).
if s.rate > 0 and before > 0 and s.rate > before and s.tat > now then
  s.tat = now + (s.tat - now) * before / s.rate
end

-- Lease slots from the fleet's line (GCRA): slot i begins at tat + i·spacing;
-- up to `burst` of unused rate is credit. No slot is leased that begins
-- more than `lease` ahead (the line is that long when the processes have
-- more callers than the rate serves), or than as much again as the asking
-- process has gone without a slot (up to a period more): the caller comes
-- back then. At one period ahead a process that joined late waited that
-- long for its first slot, and the processes that had slots leased again
-- the moment the line came within reach (time to its share: 0.4 s with 16
-- processes; 0.2 s now, median 0). Slots leased far ahead keep the spacing
-- of the rate they were leased at: with leases up to four periods ahead,
-- throttles went on for that long after each cut (8 processes: 1.15×
-- ideal, against 1.01× with one period).
local first, spacing, got = 0, 0, 0
if s.rate > 0 and want > 0 then
  spacing = 1e6 / s.rate
  s.tat = math.max(s.tat, now - burst)
  first = s.tat - now
  if first <= lease + math.min(math.max(starved, 0), P) then
    local most = math.max(1, math.floor(s.rate * lease / 1e6))
    got = math.min(want, most)
    s.tat = s.tat + got * spacing
    if now > s.ps + P then s.nsent = s.nsent + got else s.sent = s.sent + got end
  end
end

local out = {}
for _, f in ipairs(fields) do
  out[#out + 1] = f
  out[#out + 1] = string.format('%.17g', s[f])
end
redis.call('HSET', key, unpack(out))
redis.call('PEXPIRE', key, ttl)
local calm, fin = 0, 0
if s.rate == 0 then calm = 1 else fin = s.ps + P end
return {string.format('%.17g', s.rate), calm, string.format('%.17g', first), string.format('%.17g', spacing), got, repaired,
  string.format('%.17g', s.tat - now), string.format('%.17g', fin), string.format('%.17g', fin - now)}
