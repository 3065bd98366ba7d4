// The cluster admin form: the BatchCompute fields only while "BatchCompute" is chosen.
document.addEventListener("DOMContentLoaded", () => {
  const backend = document.getElementById("id_backend");
  const cloud = document.querySelector("fieldset.batchcompute");
  if (!backend || !cloud || backend.tagName !== "SELECT") return;
  const sync = () => { cloud.hidden = backend.value !== "batchcompute"; };
  backend.addEventListener("change", sync);
  sync();
});
