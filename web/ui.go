package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/labstack/echo/v4"
)

//go:embed ui
var uiFiles embed.FS

func (s *Server) mountUI() {
	sub, _ := fs.Sub(uiFiles, "ui")
	s.e.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") })
	s.e.GET("/ui", func(c echo.Context) error { return c.Redirect(http.StatusMovedPermanently, "/ui/") })
	s.e.GET("/ui/*", echo.WrapHandler(http.StripPrefix("/ui/", http.FileServer(http.FS(sub)))))
}
