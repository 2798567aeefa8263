/**
 * One draw per animation frame, however many changes ask for one: a
 * presence burst (a fleet coming back after an outage) then costs one
 * render per frame, not one per event, and a hidden tab, whose frames the
 * browser pauses, renders once when it is shown again.
 */
export class FrameScheduler {
  private pending = false;

  constructor(private readonly draw: () => void) {}

  /** Marks the view dirty: `draw` runs before the next frame is painted. */
  request(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }
}
