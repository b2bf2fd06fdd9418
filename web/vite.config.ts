import { defineConfig } from "vite";

// The Quart server serves the built files from its package folder, so the build writes there.
// VIRALSPLIT_DEV_SERVER points `npm run dev` at a running `viralsplit serve` for the API and socket.
// That server accepts the socket only if VIRALSPLIT_ALLOWED_ORIGINS lists the dev page's origin.
const backend = process.env.VIRALSPLIT_DEV_SERVER ?? "http://127.0.0.1:8000";

export default defineConfig({
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "../server/viralsplit/static",
    emptyOutDir: true,
    target: "es2022",
    assetsDir: "assets",
  },
  server: {
    proxy: {
      "/api": { target: backend, ws: true },
      "/healthz": backend,
    },
  },
});
