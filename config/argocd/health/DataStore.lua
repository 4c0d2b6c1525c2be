-- Argo CD health of a Lethe DataStore (privacy.lethe.dev/v1alpha1).
--   Healthy      Ready=True: reachable, and the live schema matches the data map.
--   Degraded     Stalled=True: schema drift or an invalid data map; the message
--                lists every problem (also in status.schemaProblems).
--   Progressing  otherwise: not yet checked, or unreachable / Secret missing
--                (retried by the controller).
-- Argo CD runs it with obj set to the live object; only the base and table
-- libraries are available.
local health = { status = "Progressing", message = "Waiting for the Lethe controller" }
if obj.status == nil or obj.status.conditions == nil then
  return health
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  health.message = "Waiting for the Lethe controller to observe the latest spec"
  return health
end
local ready, stalled
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  end
end
if stalled ~= nil and stalled.status == "True" then
  health.status = "Degraded"
  health.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return health
end
if ready ~= nil and ready.status == "True" then
  health.status = "Healthy"
  health.message = ready.message or ""
  return health
end
if ready ~= nil then
  health.message = (ready.reason or "Progressing") .. ": " .. (ready.message or "")
end
return health
