-- bench/slow.sh's cold requests: GET /cold/dDDD/fFFFF, a new name for every request, counting
-- up from COLD_START (n -> folder n / COLD_PER_DIR, file n % COLD_PER_DIR), so no file is asked
-- for twice while slow.sh moves COLD_START past the names each run used. One wrk thread (-t1)
-- keeps the count in one place. A name past the end of the pool answers 404, which the summary
-- reports as errors rather than silently repeating names.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local next_n = tonumber(os.getenv("COLD_START") or "0")
local per_dir = tonumber(os.getenv("COLD_PER_DIR") or "1000")

function request()
   local n = next_n
   next_n = n + 1
   return wrk.format("GET", string.format("/cold/d%03d/f%04d", math.floor(n / per_dir), n % per_dir))
end
