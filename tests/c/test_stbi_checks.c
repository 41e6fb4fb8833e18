/* stb_image's internal checks (STBI_ASSERT) in src/decode.c: one failing must fail the
   decode in progress with a clear error, never abort the process (in wasm: the whole
   engine, with the page's work). No known file makes one fail, so this test includes
   decode.c itself and makes stb's own check fire, as a file that found a gap in our header
   scans would. */
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_STATIC /* this file's copy of stb stays private (libtt has its own) */
#define tt_image_decode  under_test_decode
#define tt_image_free    under_test_free
#include "../../src/decode.c"

#include "check.h"

/* stb 2.27 declares this one without defining it, which a static build warns about */
static void stbi_set_unpremultiply_on_load_thread(int flag) { (void)flag; }

int main(void) {
  size_t n;
  uint8_t *png = check_read_file(NULL, "chelsea_64.png", &n);
  CHECK(png && n > 0, "cannot read chelsea_64.png");
  if (!png || !n) return check_report("stbi_checks");

  tt_image im;
  CHECK(under_test_decode(png, n, &im) == TT_OK, "a good PNG: %s", tt_last_error());
  under_test_free(&im);

  /* the BMP loader's bit-field check, made to fail (512 is not an 8-bit value) during a
     decode: the decode's guard takes it, and the decode fails with it */
  stb_guard g = {TT_STBI_MAX_ALLOC, NULL};
  active = &g;
  (void)stbi__shiftsigned(512, 0, 8);
  CHECK(g.failed_check && strcmp(g.failed_check, "v < 256") == 0, "the failed check was not kept");
  int rc = decode(png, n, &im, &g);
  active = NULL;
  CHECK(rc == TT_EFORMAT, "a decode during which stb's check failed returned %d", rc);
  CHECK(strcmp(tt_last_error(), "corrupt PNG: the decoder found it inconsistent (stb_image check "
                                "'v < 256' failed)") == 0,
        "message: %s", tt_last_error());
  CHECK(im.rgb == NULL && im.w == 0 && im.h == 0, "a failed decode left pixels behind");

  /* the failure belonged to that decode only, and one outside any decode to none */
  (void)stbi__shiftsigned(512, 0, 8);
  rc = under_test_decode(png, n, &im);
  CHECK(rc == TT_OK && im.w == 64 && im.h == 43, "the next decode: %d %s", rc, tt_last_error());
  under_test_free(&im);
  free(png);
  return check_report("stbi_checks");
}
