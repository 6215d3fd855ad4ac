-- wrk: POST each certificate of the PEM file $BENCH_CERTS once to /v1/staple, then stop when
-- every one is answered. Once all are sent, idle connections ask /healthz every 20 ms (its
-- JSON answer is told from a DER staple by its first byte) until the last staple is in.
-- wrk's own duration is the whole -d (its main thread sleeps it out), so the fill is timed
-- here, from the first certificate sent to the last answer, and written to $BENCH_OUT; the
-- caller then stops wrk with SIGINT.
local ffi = require("ffi")
ffi.cdef [[
struct bench_ts { long sec; long nsec; };
int clock_gettime(int clk, struct bench_ts *ts);
]]
local function now()
	local ts = ffi.new("struct bench_ts")
	ffi.C.clock_gettime(1, ts)
	return tonumber(ts.sec) + tonumber(ts.nsec) / 1e9
end
local t0
local certs = {}
local f = assert(io.open(os.getenv("BENCH_CERTS"), "rb"))
local all = f:read("*a")
f:close()
for c in all:gmatch("%-%-%-%-%-BEGIN CERTIFICATE.-END CERTIFICATE%-%-%-%-%-\n") do
	certs[#certs + 1] = c
end
local n, sent = #certs, 0
answered, failed = 0, 0
local head = { ["Content-Type"] = "application/x-pem-file" }
-- wrk calls request() once before any connection, to check the request it builds (thread 0,
-- the only one with -t1): that call gets the /healthz one, so no certificate is lost.
local checked = false

request = function()
	if not checked then
		checked = true
		return wrk.format("GET", "/healthz")
	end
	if sent < n then
		t0 = t0 or now()
		sent = sent + 1
		return wrk.format("POST", "/v1/staple", head, certs[sent])
	end
	return wrk.format("GET", "/healthz")
end

delay = function()
	return sent < n and 0 or 20
end

response = function(status, headers, body)
	if body:sub(1, 1) == "{" and status == 200 then
		return
	end
	answered = answered + 1
	if status ~= 200 then
		failed = failed + 1
	end
	if answered == n then
		local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
		out:write(string.format("FILL answered=%d failed=%d seconds=%.3f\n", answered, failed, now() - t0))
		out:close()
	end
end
