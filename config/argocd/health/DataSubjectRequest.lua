-- Argo CD health of a Lethe DataSubjectRequest (privacy.lethe.dev/v1alpha1).
--   Healthy      Ready=True: the request is complete (late or not: see the message).
--   Degraded     Stalled=True: retrying cannot help; the message says what to fix.
--   Suspended    OnLegalHold=True: everything not held is done; the rest waits for
--                the hold to end, which may take years.
--   Progressing  otherwise: not yet seen by the controller, or still working
--                (including past its deadline: DeadlineExceeded is in the message).
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
local ready, stalled, hold, late
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  elseif c.type == "Stalled" then
    stalled = c
  elseif c.type == "OnLegalHold" then
    hold = c
  elseif c.type == "DeadlineExceeded" then
    late = c
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
  if late ~= nil and late.status == "True" then
    health.message = health.message .. " (" .. (late.message or "after its deadline") .. ")"
  end
  return health
end
if hold ~= nil and hold.status == "True" then
  health.status = "Suspended"
  health.message = (hold.reason or "OnLegalHold") .. ": " .. (hold.message or "")
  return health
end
if ready ~= nil then
  health.message = (ready.reason or "Progressing") .. ": " .. (ready.message or "")
end
if late ~= nil and late.status == "True" then
  health.message = health.message .. " (DeadlineExceeded: " .. (late.message or "") .. ")"
end
return health
