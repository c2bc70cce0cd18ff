// Copy buttons (data-line, templates/jitportal/_copy_button.html): copy the line, then say whether it worked, on the
// button and in a polite live region (made once, before any click, so screen readers announce what is written in
// it). The clipboard API exists only on secure pages (https, or localhost) and the browser may refuse it; the
// button then says to copy the line by hand.
const copyStatus = document.createElement("p");
copyStatus.id = "copy-status";
copyStatus.className = "visually-hidden";
copyStatus.setAttribute("role", "status");
copyStatus.setAttribute("aria-live", "polite");
document.body.append(copyStatus);

document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy[data-line]");
  if (!button) return;
  const label = button.dataset.label || (button.dataset.label = button.textContent);
  const say = (text) => {
    button.textContent = text;
    copyStatus.textContent = "";  // the same words again are announced again
    setTimeout(() => { copyStatus.textContent = text === "Copied" ? `${label}: copied` : text; }, 50);
    setTimeout(() => { button.textContent = label; copyStatus.textContent = ""; }, 4000);
  };
  const copying = navigator.clipboard ? navigator.clipboard.writeText(button.dataset.line) : Promise.reject();
  copying.then(() => say("Copied"), () => say("Copy failed: select the line and copy it"));
});
