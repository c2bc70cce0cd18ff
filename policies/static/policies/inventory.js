// Inventory: the header checkbox selects every row of the page for the bulk "Enable JIT" form.
document.addEventListener("change", (event) => {
  if (!event.target.classList.contains("select-all")) return;
  for (const box of document.querySelectorAll('#result_list input[name="vm"]')) box.checked = event.target.checked;
});
