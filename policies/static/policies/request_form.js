// Request form: typing an address picks the source choice it belongs to ("A specific IP" or "An IP range").
document.addEventListener("input", (event) => {
  const kind = {source_ip: "ip", source_range: "range"}[event.target.name];
  if (!kind || !event.target.value.trim()) return;
  const radio = document.querySelector(`input[name="source_kind"][value="${kind}"]`);
  if (radio) radio.checked = true;
});
