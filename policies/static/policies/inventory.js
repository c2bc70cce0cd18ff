// Inventory: the header checkbox selects every row of the page (for "Enable JIT" or "Request access").
document.addEventListener("change", (event) => {
  if (!event.target.classList.contains("select-all")) return;
  for (const box of document.querySelectorAll('#result_list input[name="vm"]')) box.checked = event.target.checked;
});
