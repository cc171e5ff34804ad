-- wrk script: PUT a runtime override whose value changes on every request, so each one is a real
-- change (validated, recorded durably in the history, swapped in). Set BENCH_TOKEN in the environment.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or ""

function setup(thread)
    thread:set("offset", math.random(0, 1000))
end

function request()
    counter = counter + 1
    -- Staging's api.timeout must validate in every view, and api_service's schema caps it at 30:
    -- cycle through 1..29 so consecutive values always differ and every PUT is a real change.
    local value = (counter + (offset or 0)) % 29 + 1
    return wrk.format("PUT", nil, {
        ["Authorization"] = "Bearer " .. token,
        ["Content-Type"] = "application/json",
    }, '{"value": ' .. value .. '}')
end
