-- Argo CD health check for cutover.dev/StorageBackend
-- (resource.customizations.health.cutover.dev_StorageBackend in argocd-cm).
-- Degraded when the operator says so, Healthy when Ready at the current
-- generation, Progressing otherwise.
local hs = { status = "Progressing", message = "Waiting for the cutover operator" }
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "The operator has not observed generation " .. tostring(generation) .. " yet"
  return hs
end
local ready, progressing, degraded
for _, c in ipairs(obj.status.conditions or {}) do
  if c.type == "Ready" then ready = c end
  if c.type == "Progressing" then progressing = c end
  if c.type == "Degraded" then degraded = c end
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = (degraded.reason or "Degraded") .. ": " .. (degraded.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if progressing ~= nil and progressing.status == "True" then
  hs.message = (progressing.reason or "Progressing") .. ": " .. (progressing.message or "")
end
return hs
