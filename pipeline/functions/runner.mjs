// The functions runner of minivercel: one Node process per deployment that
// answers /api/ requests with the handlers of the project's api/ folder.
// The edge starts it in the extracted build with PORT and HOST, proxies
// /api/ to it, and stops it when idle. routes.json next to this file lists
// the routes, most specific first; modules are imported on first use.
//
// A handler is either Vercel's Node signature, (req, res) with req.query,
// req.cookies, req.body and res.status/json/send/redirect, or the Web
// signature, (request: Request) => Response, as the default export or as
// named exports GET, POST, ... (module.exports works too). A default export
// taking two parameters is a Node handler; one taking fewer is a Web one.

import http from "node:http";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const routes = JSON.parse(readFileSync(path.join(here, "routes.json"), "utf8")).routes;
const maxBodyArg = process.argv.find((a) => a.startsWith("--max-body="));
const maxBody = Number(maxBodyArg?.slice("--max-body=".length)) || 4.5 * 1024 * 1024;
const healthPath = "/.minivercel/health";
// maxDuration bounds one invocation, as Vercel's default maximum duration.
const maxDuration = 300 * 1000;
const methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function match(pathname) {
  let segs;
  try {
    segs = pathname.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    return null;
  }
  outer: for (const route of routes) {
    if (route.segments.length !== segs.length) continue;
    const params = Object.create(null);
    for (let i = 0; i < segs.length; i++) {
      const s = route.segments[i];
      if (s.param) params[s.param] = segs[i];
      else if (s.static !== segs[i]) continue outer;
    }
    return { route, params };
  }
  return null;
}

const modules = new Map();
function load(file) {
  let p = modules.get(file);
  if (!p) {
    p = import(pathToFileURL(path.join(here, file)).href);
    modules.set(file, p);
  }
  return p;
}

// pick returns the handler of a module for a method: { web, fn }, or
// { allow } when the module has handlers for other methods only.
function pick(mod, method) {
  let def = mod.default;
  if (def && typeof def === "object" && typeof def.default === "function") def = def.default;
  const sources = [mod];
  if (def && typeof def === "object") sources.push(def);
  for (const src of sources) {
    const fn = src[method] ?? (method === "HEAD" ? src.GET : undefined);
    if (typeof fn === "function") return { web: true, fn };
  }
  if (typeof def === "function") return { web: def.length < 2, fn: def };
  if (def && typeof def.fetch === "function") return { web: true, fn: def.fetch.bind(def) };
  const has = (m) => sources.some((src) => typeof src[m] === "function");
  const allow = methods.filter((m) => has(m) || (m === "HEAD" && has("GET")));
  return { allow };
}

async function readBody(req) {
  if (Number(req.headers["content-length"]) > maxBody) throw new HttpError(413, "request body too large");
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > maxBody) throw new HttpError(413, "request body too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

// Objects built from a request's keys have no prototype: "toString",
// "constructor" or "__proto__" are keys like any other, never inherited
// members or a way to change the object's prototype.
function toObject(params) {
  const out = Object.create(null);
  for (const [k, v] of params) {
    if (!Object.hasOwn(out, k)) out[k] = v;
    else if (Array.isArray(out[k])) out[k].push(v);
    else out[k] = [out[k], v];
  }
  return out;
}

function parseBody(buf, contentType) {
  if (buf.length === 0) return undefined;
  const type = (contentType || "").split(";")[0].trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json")) {
    try {
      return JSON.parse(buf.toString("utf8"));
    } catch {
      throw new HttpError(400, "Invalid JSON");
    }
  }
  if (type === "application/x-www-form-urlencoded") return toObject(new URLSearchParams(buf.toString("utf8")));
  if (type.startsWith("text/")) return buf.toString("utf8");
  return buf;
}

function parseCookies(header) {
  const out = Object.create(null);
  for (const part of (header || "").split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (!k || Object.hasOwn(out, k)) continue;
    let v = part.slice(i + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

function addHelpers(res) {
  res.status = (code) => {
    res.statusCode = code;
    return res;
  };
  res.json = (value) => {
    if (!res.getHeader("content-type")) res.setHeader("Content-Type", "application/json; charset=utf-8");
    res.end(JSON.stringify(value));
    return res;
  };
  res.send = (body) => {
    if (body === undefined || body === null) {
      res.end();
    } else if (Buffer.isBuffer(body) || body instanceof Uint8Array) {
      if (!res.getHeader("content-type")) res.setHeader("Content-Type", "application/octet-stream");
      res.end(body);
    } else if (typeof body === "object") {
      res.json(body);
    } else {
      if (!res.getHeader("content-type")) res.setHeader("Content-Type", "text/html; charset=utf-8");
      res.end(String(body));
    }
    return res;
  };
  res.redirect = (statusOrUrl, url) => {
    const [status, location] = typeof statusOrUrl === "number" ? [statusOrUrl, url] : [307, statusOrUrl];
    res.statusCode = status;
    res.setHeader("Location", location);
    res.end();
    return res;
  };
}

async function callNode(fn, req, res, body, query) {
  req.query = query;
  req.cookies = parseCookies(req.headers.cookie);
  req.body = parseBody(body, req.headers["content-type"]);
  addHelpers(res);
  await fn(req, res);
}

async function callWeb(fn, req, res, body, url, params) {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    try {
      headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
    } catch {
      // A header the Fetch API refuses is left out.
    }
  }
  const init = { method: req.method, headers };
  if (req.method !== "GET" && req.method !== "HEAD") {
    init.body = body;
    init.duplex = "half";
  }
  const response = await fn(new Request(url, init), { params });
  if (!(response instanceof Response)) {
    throw new Error("the handler did not return a Response");
  }
  res.statusCode = response.status;
  for (const [k, v] of response.headers) {
    if (k !== "set-cookie") res.setHeader(k, v);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length) res.setHeader("Set-Cookie", cookies);
  if (!response.body || req.method === "HEAD") {
    res.end();
    return;
  }
  for await (const chunk of response.body) {
    if (!res.write(chunk)) await drained(res);
    if (res.destroyed) return;
  }
  res.end();
}

// drained waits until res can take more, or is gone.
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function answer(res, status, message) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" });
  res.end(JSON.stringify({ error: message }) + "\n");
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${req.headers.host || "localhost"}`);
  if (url.pathname === healthPath) {
    res.end("ok\n");
    return;
  }
  const found = match(url.pathname);
  if (!found) {
    answer(res, 404, `no function at ${url.pathname}`);
    return;
  }
  const { route, params } = found;
  const timer = setTimeout(() => {
    console.error(`${route.file} did not answer ${req.method} ${url.pathname} within ${maxDuration / 1000} s`);
    answer(res, 504, "the function timed out");
  }, maxDuration);
  res.on("close", () => clearTimeout(timer));
  let mod;
  try {
    mod = await load(route.file);
  } catch (err) {
    console.error(`${route.file} could not be loaded:`, err);
    answer(res, 500, "Internal Server Error");
    return;
  }
  const handler = pick(mod, req.method);
  if (!handler.fn) {
    if (handler.allow.length === 0) {
      console.error(`${route.file} exports no handler: export a default function or GET, POST, ...`);
      answer(res, 500, "Internal Server Error");
      return;
    }
    res.setHeader("Allow", handler.allow.join(", "));
    answer(res, 405, `method ${req.method} not allowed`);
    return;
  }
  try {
    const body = await readBody(req);
    if (handler.web) {
      await callWeb(handler.fn, req, res, body, url, params);
    } else {
      await callNode(handler.fn, req, res, body, { ...toObject(url.searchParams), ...params });
    }
  } catch (err) {
    if (err instanceof HttpError) {
      answer(res, err.status, err.message);
      return;
    }
    console.error(`${route.file} failed on ${req.method} ${url.pathname}:`, err);
    answer(res, 500, "Internal Server Error");
  }
}

process.on("unhandledRejection", (err) => {
  console.error("unhandled rejection:", err);
});

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error("runner:", err);
    answer(res, 500, "Internal Server Error");
  });
});
server.listen(Number(process.env.PORT), process.env.HOST || "127.0.0.1", () => {
  console.log(`functions ready: ${routes.map((r) => r.path).join(", ")}`);
});
