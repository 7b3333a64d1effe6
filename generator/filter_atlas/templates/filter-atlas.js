// Filter Atlas (written by `filter-atlas pages`): the theme wraps wide tables in a scrolling box;
// make each box focusable, so that it can be scrolled with the keyboard (WCAG 2.1.1).
document$.subscribe(() => {
  for (const box of document.querySelectorAll(".md-typeset__scrollwrap")) {
    box.tabIndex = 0;
  }
});
