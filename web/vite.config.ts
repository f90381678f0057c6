// Builds the dashboard (index.html + src/dashboard/) into the Python package, which ships it:
// the bridge serves it at / on its own port, so a rover needs no Node.js.
//   npm ci && npm run build     (then commit rover_ws_bridge/dashboard/, SOURCE_HASH included)
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Relative asset URLs: the page works at / and behind any path prefix (a reverse proxy).
  base: "./",
  build: {
    outDir: fileURLToPath(new URL("../rover_ws_bridge/dashboard", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    // Rovers serve it from flash over Wi-Fi: one small bundle, no source maps.
    sourcemap: false,
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 300,
  },
});
