-- wrk script: PUT a runtime override whose value changes on every request, so each one is a real
-- change (validated, recorded durably in the history, swapped in). Set BENCH_TOKEN in the environment.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or ""

function setup(thread)
    thread:set("offset", math.random(0, 1000))
end

function request()
    counter = counter + 1
    -- api.timeout accepts 0.1 to 300: cycle through 1..299 so consecutive values always differ.
    local value = (counter + (offset or 0)) % 299 + 1
    return wrk.format("PUT", nil, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
    }, '{"value": ' .. value .. '}')
end
