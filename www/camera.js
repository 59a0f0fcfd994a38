// Samples from the camera: a mirrored preview and square frames cut from its middle, the way
// the user sees them. Only the page touches the stream; frames leave as JPEG blobs.

/** The side of a captured frame: the largest image size the page offers (224x224). */
export const FRAME_SIZE = 224;

export class Camera {
  /** @param {HTMLVideoElement} video the preview */
  constructor(video) {
    this.video = video;
    /** @type {MediaStream | null} */
    this.stream = null;
  }

  get on() {
    return this.stream !== null;
  }

  /** Asks for the camera and shows it; throws an Error whose message says what to do. */
  async start() {
    if (!navigator.mediaDevices?.getUserMedia) {
      throw new Error('This browser offers no camera to this page (cameras need https or localhost): add images from files instead.');
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (error) {
      throw new Error(describeCameraError(error));
    }
    this.video.srcObject = this.stream;
    await this.video.play();
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }

  /** The current frame, mirrored like the preview, as a square JPEG. @returns {Promise<Blob>} */
  capture() {
    const { videoWidth: width, videoHeight: height } = this.video;
    const side = Math.min(width, height);
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = FRAME_SIZE;
    const context = canvas.getContext('2d');
    context.translate(FRAME_SIZE, 0);
    context.scale(-1, 1);
    context.drawImage(this.video, (width - side) / 2, (height - side) / 2, side, side, 0, 0, FRAME_SIZE, FRAME_SIZE);
    return new Promise((resolve, reject) => canvas.toBlob(
      (blob) => (blob ? resolve(blob) : reject(new Error('the frame could not be encoded'))), 'image/jpeg', 0.9));
  }
}

/** What a failed getUserMedia means for the user, by the error's standard name. */
export function describeCameraError(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The camera was not allowed: allow it in the browser\'s site settings and try again, or add images from files.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found: connect one and try again, or add images from files.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera is in use by another program or could not start: close it there and try again.';
    default:
      return `The camera could not start (${error?.message ?? error}).`;
  }
}
