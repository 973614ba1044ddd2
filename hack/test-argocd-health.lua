-- Runs docs/argocd-health.lua against sample ProductionProfile statuses, as
-- Argo CD would (Lua 5.1, the object in the global `obj`).
--   lua5.1 hack/test-argocd-health.lua
local here = arg[0]:match("(.*/)") or "./"
local script = assert(io.open(here .. "../docs/argocd-health.lua")):read("*a")

local function health(object)
  obj = object
  return assert(loadstring(script))()
end

local function condition(type, status, reason, message)
  return { type = type, status = status, reason = reason, message = message }
end

local function reconciled(ready, stalled)
  return {
    metadata = { generation = 2 },
    status = {
      observedGeneration = 2,
      conditions = {
        ready,
        condition("Reconciling", "False", "Reconciled", "generation 2 applied to every namespace"),
        stalled or condition("Stalled", "False", "NotStalled", "no problem needs a change to the profile"),
      },
    },
  }
end

local cases = {
  { "no status yet", { metadata = { generation = 1 } }, "Progressing" },
  {
    "status of an older generation",
    {
      metadata = { generation = 3 },
      status = { observedGeneration = 2, conditions = { condition("Ready", "True", "Compliant", "all 2 namespaces comply") } },
    },
    "Progressing",
  },
  { "compliant", reconciled(condition("Ready", "True", "Compliant", "all 2 namespaces comply")), "Healthy" },
  {
    "stalled",
    reconciled(
      condition("Ready", "False", "NotCompliant", "1 of 2 namespaces comply"),
      condition("Stalled", "True", "RoleNotAllowed", "shop: cluster-admin is not on the allow list")
    ),
    "Degraded",
  },
  {
    "reconciling",
    {
      metadata = { generation = 2 },
      status = {
        observedGeneration = 2,
        conditions = {
          condition("Ready", "False", "Progressing", "1 of 2 namespaces reconciled"),
          condition("Reconciling", "True", "Progressing", "1 of 2 namespaces reconciled at generation 2"),
        },
      },
    },
    "Progressing",
  },
  { "audit drift", reconciled(condition("Ready", "False", "Drifted", "1 of 2 namespaces comply")), "Degraded" },
}

local failed = 0
for _, case in ipairs(cases) do
  local result = health(case[2])
  local ok = result.status == case[3]
  if not ok then
    failed = failed + 1
  end
  print(string.format("%s %s: %s (%s)", ok and "ok  " or "FAIL", case[1], result.status, result.message))
end
print(string.format("%d passed, %d failed", #cases - failed, failed))
os.exit(failed == 0 and 0 or 1)
