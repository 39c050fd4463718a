// Destructive buttons ask first: a submit button with data-confirm="question"
// submits its form only once the proctor says yes. The question is the server's.
export function confirmSubmits(root = document) {
  root.addEventListener("submit", (ev) => {
    const question = ev.submitter?.dataset.confirm;
    if (question && !window.confirm(question)) ev.preventDefault();
  });
}
