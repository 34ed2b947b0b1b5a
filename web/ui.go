package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// uiFiles is the web UI: plain HTML, CSS and JavaScript, no build step.
//
//go:embed ui
var uiFiles embed.FS

// mountUI serves the UI under /ui/. Every file carries an ETag of its
// content and "no-cache", so a browser revalidates (a 304 when nothing
// changed) and never runs the assets of an older binary.
func (s *Server) mountUI() {
	sub, _ := fs.Sub(uiFiles, "ui")
	etags := map[string]string{}
	_ = fs.WalkDir(sub, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		etags[path] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	files := http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))
	s.e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") })
	s.e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
	s.e.GET("/ui/*", func(c echo.Context) error {
		name := strings.TrimPrefix(c.Request().URL.Path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		h := c.Response().Header()
		if tag, ok := etags[name]; ok {
			h.Set("ETag", tag)
		}
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
}
