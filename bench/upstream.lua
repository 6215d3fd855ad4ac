-- wrk: POST the OCSP requests of $BENCH_REQUESTS (hex DER, one a line) in turn, straight to
-- an OCSP responder: the upstream's own capacity.
local reqs = {}
for line in io.lines(os.getenv("BENCH_REQUESTS")) do
	reqs[#reqs + 1] = line:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
end
local i, n = 0, #reqs
local head = { ["Content-Type"] = "application/ocsp-request" }

request = function()
	i = i % n + 1
	return wrk.format("POST", "/", head, reqs[i])
end
