// System notifications (Notification API) for messages that arrive while the
// tab is hidden. Permission is asked only from a click, as browsers require.

export class Notifier {
  constructor(button) {
    this.button = button;
    this.supported = "Notification" in window;
    button.addEventListener("click", async () => {
      try {
        await Notification.requestPermission();
      } finally {
        this.update();
      }
    });
    this.update();
  }

  update() {
    this.button.hidden = !this.supported || Notification.permission !== "default";
  }

  /** Show one notification per conversation (a newer one replaces it). */
  show({ title, body, tag, onClick }) {
    if (!this.supported || Notification.permission !== "granted") return;
    if (document.visibilityState !== "hidden") return;
    const notification = new Notification(title, {
      body: body.length > 200 ? `${body.slice(0, 199)}…` : body,
      tag,
    });
    notification.onclick = () => {
      window.focus();
      onClick();
      notification.close();
    };
  }
}
