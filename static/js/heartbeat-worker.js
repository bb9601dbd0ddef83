// The heartbeat's clock. Chrome slows the timers of a page hidden for over five
// minutes to once a minute, which would let the server's 30 s presence timeout
// run out; a dedicated worker's timers are not slowed. The page posts
// {interval: ms} to start ticking (0 stops), and sends a heartbeat on each tick.

let timer = null;

self.onmessage = (event) => {
  clearInterval(timer);
  timer = null;
  const interval = Number(event.data?.interval) || 0;
  if (interval > 0) timer = setInterval(() => self.postMessage("tick"), interval);
};
