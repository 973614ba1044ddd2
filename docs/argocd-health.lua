-- Argo CD health check for baseliner.dev/ProductionProfile.
--
-- Install it under the key
--   resource.customizations.health.baseliner.dev_ProductionProfile
-- of the argocd-cm ConfigMap (see docs/gitops.md).
--
-- It reads what baseliner writes, the kstatus way: the profile is current
-- only once status.observedGeneration has caught up with
-- metadata.generation; then Stalled=True is Degraded (the profile needs a
-- change: a role off the allow list, Velero missing...), Reconciling=True is
-- Progressing, Ready=True is Healthy, and Ready=False after a full pass is
-- Degraded (namespaces that do not comply, or drift an Audit profile found).
local hs = {}

local function find(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == type then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for baseliner to reconcile the profile"
  return hs
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for baseliner to apply generation " .. tostring(obj.metadata.generation)
    .. " (status describes " .. tostring(obj.status.observedGeneration) .. ")"
  return hs
end

local conditions = obj.status.conditions
local stalled = find(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local reconciling = find(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end

local ready = find(conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Degraded"
end
hs.message = describe(ready)
return hs
