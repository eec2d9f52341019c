import { defineConfig } from 'vite';

// Preact through Vite's built-in esbuild JSX transform (no framework
// plugin): works with vite@5 on Node 18 and 20. pkiaasd serves dist/ at
// /portal/ (and the entry page at /), so every asset URL starts /portal/.
export default defineConfig({
  base: '/portal/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, target: 'es2020', chunkSizeWarningLimit: 600 },
});
