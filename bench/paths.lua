-- wrk: GET a request path picked at random from the file $BENCH_PATHS (one path a line).
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
	paths[#paths + 1] = line
end
local n = #paths
math.randomseed(os.time())

request = function()
	return wrk.format("GET", paths[math.random(n)])
end
