// Tasks other than chat and embeddings: which input each takes (text, an image, an audio file, candidate labels, a
// question) and how its output is shown (labels with scores, boxes drawn on the image, masks and depth maps, an
// audio player or an image for generated media, else JSON as text). Everything from a model goes in as text,
// attributes or a data:/blob: URL made here, never as markup.

import { headers } from "./api.js";
import { errorBox, fmtNumber, h } from "./dom.js";

export const IMAGE_TASKS = new Set([
  "image-classification",
  "zero-shot-image-classification",
  "object-detection",
  "zero-shot-object-detection",
  "image-segmentation",
  "depth-estimation",
  "image-feature-extraction",
  "image-to-text",
  "visual-question-answering",
  "document-question-answering",
]);
export const AUDIO_TASKS = new Set(["automatic-speech-recognition", "audio-classification"]);
export const LABEL_TASKS = new Set([
  "zero-shot-classification",
  "zero-shot-image-classification",
  "zero-shot-object-detection",
]);
export const QUESTION_TASKS = new Set(["visual-question-answering", "document-question-answering", "question-answering"]);

/** What the form shows for a task: {media: "image"|"audio"|null, labels, question}. */
export function inputsOf(task) {
  return {
    media: IMAGE_TASKS.has(task) ? "image" : AUDIO_TASKS.has(task) ? "audio" : null,
    labels: LABEL_TASKS.has(task),
    question: QUESTION_TASKS.has(task),
  };
}

/** The v2 run body: the text as `input` (or `question`/`context` for question answering), the media as a data URI
 *  in `url`, candidate labels at the top level (the HTTP body shape: fields beside `params`). */
export function runBody(task, { text, mediaUrl, labels }) {
  const body = { params: {} };
  if (mediaUrl) {
    body.url = mediaUrl;
    if (text) body.question = text;
  } else if (task === "question-answering") {
    const [question, ...context] = text.split("\n");
    body.question = question;
    body.context = context.join("\n");
  } else {
    body.input = text;
  }
  if (labels.length) body.candidate_labels = labels;
  return body;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MEDIA_PATH = /^(https?:\/\/[^/]+)?\/models\/v2\/media\/[A-Za-z0-9_-]+$/;

/** The output of a run, as elements; `imageUrl` is the image the user sent (for boxes). */
export function outputView(output, imageUrl) {
  if (Array.isArray(output) && output.length && output.every((x) => x && x.box && typeof x.box === "object")) {
    return boxesView(output, imageUrl);
  }
  if (Array.isArray(output) && output.length && output.every((x) => x && typeof x.mask === "string")) {
    return h(
      "div",
      { class: "masks" },
      output.map((x) =>
        h(
          "figure",
          {},
          pngOrText(x.mask, `mask of ${x.label}`),
          h("figcaption", {}, `${x.label}${x.score == null ? "" : ` · ${fmtNumber(x.score, 3)}`}`),
        ),
      ),
    );
  }
  if (output && typeof output === "object" && typeof output.depth === "string") {
    return h(
      "figure",
      {},
      pngOrText(output.depth, "depth map"),
      h("figcaption", {}, `depth from ${output.min} to ${output.max} (${output.width}×${output.height})`),
    );
  }
  const scored = Array.isArray(output) && output.length && output.every((x) => x && typeof x.score === "number");
  if (scored) {
    return h(
      "ul",
      { class: "scores", "data-testid": "scores" },
      output.map((item) =>
        h(
          "li",
          {},
          h("span", { class: "label" }, String(item.label ?? item.token_str ?? item.entity ?? item.entity_group ?? item.answer ?? "")),
          h("meter", { min: 0, max: 1, value: item.score }),
          h("span", {}, fmtNumber(item.score, 3)),
        ),
      ),
    );
  }
  if (output && typeof output === "object" && Array.isArray(output.labels) && Array.isArray(output.scores)) {
    return outputView(output.labels.map((label, i) => ({ label, score: output.scores[i] })));
  }
  if (typeof output === "string" && MEDIA_PATH.test(output)) return mediaView(output);
  if (typeof output === "string") return h("div", { class: "text", "data-testid": "answer" }, output);
  return h("pre", { class: "json", "data-testid": "answer" }, JSON.stringify(output, null, 2));
}

function pngOrText(b64, alt) {
  if (!BASE64.test(b64)) return h("pre", {}, b64.slice(0, 200));
  return h("img", { src: `data:image/png;base64,${b64}`, alt, class: "thumb" });
}

/** Generated media on this server (`/models/v2/media/{id}`): fetched with the user's key (it belongs to that
 *  key), shown as an image or an audio player from a blob: URL. */
function mediaView(url) {
  const box = h("div", { class: "media", "data-testid": "media" }, h("a", { href: url, rel: "noopener noreferrer" }, url));
  if (new URL(url, location.href).origin !== location.origin) return box; // the key goes to this server only
  fetch(url, { headers: headers() })
    .then(async (response) => {
      if (!response.ok) throw new Error(`The server answered ${response.status} for the media.`);
      const blob = await response.blob();
      const local = URL.createObjectURL(blob);
      if (blob.type.startsWith("image/")) box.prepend(h("img", { src: local, alt: "generated image", class: "generated" }));
      else if (blob.type.startsWith("audio/")) box.prepend(h("audio", { src: local, controls: true }));
    })
    .catch((exc) => box.append(errorBox(exc)));
  return box;
}

/** Detected objects: the image with each box drawn and labelled, and the list as text. */
function boxesView(found, imageUrl) {
  const wrap = h("div", { class: "boxes" });
  if (imageUrl) {
    const canvas = h("canvas", { "data-testid": "boxes", role: "img", "aria-label": `${found.length} objects found` });
    const img = new Image();
    img.onload = () => {
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      ctx.lineWidth = Math.max(2, img.naturalWidth / 200);
      ctx.font = `${Math.max(12, img.naturalWidth / 40)}px sans-serif`;
      for (const item of found) {
        const { xmin, ymin, xmax, ymax } = item.box;
        ctx.strokeStyle = "#dc2626";
        ctx.strokeRect(xmin, ymin, xmax - xmin, ymax - ymin);
        ctx.fillStyle = "#dc2626";
        ctx.fillText(`${item.label} ${fmtNumber(item.score, 2)}`, xmin + 3, Math.max(ymin - 4, 12)); // text on a canvas
      }
    };
    img.src = imageUrl;
    wrap.append(canvas);
  }
  wrap.append(
    h(
      "ul",
      { class: "found" },
      found.map((x) => {
        const b = x.box;
        return h("li", {}, `${x.label} ${fmtNumber(x.score, 3)} at (${b.xmin}, ${b.ymin})–(${b.xmax}, ${b.ymax})`);
      }),
    ),
  );
  return wrap;
}
