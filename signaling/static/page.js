// The page's state (logged out, idle, calling, in a call), moved only by the PAGE table.

import { PAGE, PageState, step } from './callstate.js';

export class Page {
  constructor(view, facts) {
    this.view = view;
    this.facts = facts; // () => {named, loggingIn}
    this.state = PageState.LOGGED_OUT;
  }

  fire(event) {
    this.state = step(PAGE, this.state, event).next;
    this.refresh();
  }

  refresh() {
    this.view.showState(this.state, this.facts());
  }
}
