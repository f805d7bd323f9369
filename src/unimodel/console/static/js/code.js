// "Show code": the call the playground makes, as curl, the Bytez Python SDK and the OpenAI Python SDK.
// Keys appear as environment variables, never their values.

const py = (value) => JSON.stringify(value, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
const shq = (text) => `'${text.replace(/'/g, `'\\''`)}'`;

/** {curl, bytez, openai} for a chat call: `call` is {model, messages, params, closed}. */
export function chatSnippets(origin, call) {
  const body = { model: call.model, messages: call.messages, ...call.params, stream: true };
  const headerLines = [`  -H "authorization: Bearer $UNIMODEL_KEY"`];
  if (call.closed) headerLines.push(`  -H "provider-key: $PROVIDER_KEY"`);
  const curl = [
    `curl -sN ${origin}/v1/chat/completions \\`,
    ...headerLines.map((line) => `${line} \\`),
    `  -H 'content-type: application/json' \\`,
    `  -d ${shq(JSON.stringify(body))}`,
  ].join("\n");

  const v2params = {};
  for (const [name, value] of Object.entries(call.params)) v2params[name === "max_tokens" ? "max_new_tokens" : name] = value;
  const hostLine =
    origin === "http://localhost:8080" ? null : `sdk._client.host = "${origin}/models/v2/"  # dev=True means localhost:8080`;
  const bytez = [
    "import os",
    "from bytez import Bytez",
    "",
    `sdk = Bytez(os.environ["UNIMODEL_KEY"], dev=True)`,
    hostLine,
    call.closed
      ? `model = sdk.model(${JSON.stringify(call.model)}, provider_key=os.environ["PROVIDER_KEY"])`
      : `model = sdk.model(${JSON.stringify(call.model)})`,
    `messages = ${py(call.messages)}`,
    `for chunk in model.run(messages, ${py(v2params)}, stream=True):`,
    `    print(chunk, end="")`,
  ]
    .filter((line) => line !== null)
    .join("\n");

  const openai = [
    "import os",
    "from openai import OpenAI",
    "",
    "client = OpenAI(",
    `    base_url="${origin}/v1",`,
    `    api_key=os.environ["UNIMODEL_KEY"],`,
    call.closed ? `    default_headers={"provider-key": os.environ["PROVIDER_KEY"]},` : null,
    ")",
    "stream = client.chat.completions.create(",
    `    model=${JSON.stringify(call.model)},`,
    `    messages=${py(call.messages).replace(/\n/g, "\n    ")},`,
    ...Object.entries(call.params).map(([name, value]) => `    ${name}=${py(value).replace(/\n/g, "\n    ")},`),
    "    stream=True,",
    ")",
    "for chunk in stream:",
    `    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="")`,
  ]
    .filter((line) => line !== null)
    .join("\n");
  return { curl, bytez, openai };
}

/** The same three for an embedding call: `call` is {model, input, closed}. */
export function embeddingSnippets(origin, call) {
  const body = { model: call.model, input: call.input };
  const curl = [
    `curl -s ${origin}/v1/embeddings \\`,
    `  -H "authorization: Bearer $UNIMODEL_KEY" \\`,
    call.closed ? `  -H "provider-key: $PROVIDER_KEY" \\` : null,
    `  -H 'content-type: application/json' \\`,
    `  -d ${shq(JSON.stringify(body))}`,
  ]
    .filter((line) => line !== null)
    .join("\n");
  const bytez = [
    "import os",
    "from bytez import Bytez",
    "",
    `sdk = Bytez(os.environ["UNIMODEL_KEY"], dev=True)`,
    call.closed
      ? `model = sdk.model(${JSON.stringify(call.model)}, provider_key=os.environ["PROVIDER_KEY"])`
      : `model = sdk.model(${JSON.stringify(call.model)})`,
    `print(model.run(${py(call.input[0] ?? "")}).output)  # one vector for a string`,
  ].join("\n");
  const openai = [
    "import os",
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url="${origin}/v1", api_key=os.environ["UNIMODEL_KEY"]${
      call.closed ? `, default_headers={"provider-key": os.environ["PROVIDER_KEY"]}` : ""
    })`,
    `out = client.embeddings.create(model=${JSON.stringify(call.model)}, input=${py(call.input)})`,
    "print([len(d.embedding) for d in out.data])",
  ].join("\n");
  return { curl, bytez, openai };
}

const OPENAI_MEDIA = {
  "text-to-image": (model, text) => [`out = client.images.generate(model=${JSON.stringify(model)}, prompt=${py(text)})`, "print(out.data[0].url or out.data[0].b64_json[:40])"],
  "text-to-speech": (model, text) => [
    `speech = client.audio.speech.create(model=${JSON.stringify(model)}, voice="alloy", input=${py(text)})`,
    'open("speech.mp3", "wb").write(speech.content)',
  ],
  "automatic-speech-recognition": (model) => [
    `out = client.audio.transcriptions.create(model=${JSON.stringify(model)}, file=open("audio.mp3", "rb"))`,
    "print(out.text)",
  ],
};

/** The same three for a v2 run of any other task: `call` is {model, task, body, closed}; a data URI the page made
 *  from a file is shown as a placeholder. */
export function runSnippets(origin, call) {
  const body = { ...call.body };
  if (typeof body.url === "string" && body.url.startsWith("data:")) body.url = "data:<your file as a data URI>";
  const curl = [
    `curl -s ${origin}/models/v2/${call.model} \\`,
    `  -H "authorization: Bearer $UNIMODEL_KEY" \\`,
    call.closed ? `  -H "provider-key: $PROVIDER_KEY" \\` : null,
    `  -H 'content-type: application/json' \\`,
    `  -d ${shq(JSON.stringify(body))}`,
  ]
    .filter((line) => line !== null)
    .join("\n");
  const input = body.url ?? body.input ?? "";
  const extra = Object.fromEntries(Object.entries(body).filter(([k]) => !["url", "input", "params"].includes(k)));
  const bytez = [
    "import os",
    "from bytez import Bytez",
    "",
    `sdk = Bytez(os.environ["UNIMODEL_KEY"], dev=True)`,
    call.closed
      ? `model = sdk.model(${JSON.stringify(call.model)}, provider_key=os.environ["PROVIDER_KEY"])`
      : `model = sdk.model(${JSON.stringify(call.model)})`,
    Object.keys(extra).length
      ? `print(model.run(${py({ ...(body.url ? { url: input } : { text: input }), ...extra })}).output)`
      : `print(model.run(${py(input)}).output)`,
  ].join("\n");
  const media = OPENAI_MEDIA[call.task];
  const openai = media
    ? [
        "import os",
        "from openai import OpenAI",
        "",
        `client = OpenAI(base_url="${origin}/v1", api_key=os.environ["UNIMODEL_KEY"]${
          call.closed ? `, default_headers={"provider-key": os.environ["PROVIDER_KEY"]}` : ""
        })`,
        ...media(call.model, String(input)),
      ].join("\n")
    : `# The OpenAI SDK has no call for ${call.task}: use the v2 API (curl or the Bytez SDK above).`;
  return { curl, bytez, openai };
}
