-- wrk: a request picked at random from the file $BENCH_PATHS (one `/ocsp/{base64}` path a
-- line) for every request: GET of the path, or with BENCH_POST=1 a POST /ocsp of the same
-- OCSPRequest as its body (decoded once, at start).
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
	paths[#paths + 1] = line
end
local n = #paths
math.randomseed(os.time())

local post = os.getenv("BENCH_POST") == "1"
if post then
	local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	local val = {}
	for i = 1, 64 do
		val[b64:sub(i, i)] = i - 1
	end
	local function unbase64(s)
		local out, bits, acc = {}, 0, 0
		for c in s:gmatch("[%w%+/]") do
			acc = acc * 64 + val[c]
			bits = bits + 6
			if bits >= 8 then
				bits = bits - 8
				local byte = math.floor(acc / 2 ^ bits)
				out[#out + 1] = string.char(byte)
				acc = acc - byte * 2 ^ bits
			end
		end
		return table.concat(out)
	end
	for i = 1, n do
		local s = paths[i]:gsub("^/ocsp/", ""):gsub("%%(%x%x)", function(h)
			return string.char(tonumber(h, 16))
		end)
		paths[i] = unbase64(s)
	end
end

request = function()
	if post then
		return wrk.format("POST", "/ocsp", { ["Content-Type"] = "application/ocsp-request" },
			paths[math.random(n)])
	end
	return wrk.format("GET", paths[math.random(n)])
end
