"""Sphinx configuration for the nova-xenapi-resign documentation.

Built by ``tox -e docs`` with warnings as errors.  The configuration
reference is generated from the options themselves (``oslo_config``'s
Sphinx extension reads the ``oslo.config.opts`` entry points), so the
package must be installed in the build environment.
"""

project = "nova-xenapi-resign"
copyright = "nova-xenapi-resign developers"
author = "nova-xenapi-resign developers"

extensions = [
    "oslo_config.sphinxext",
    # Release notes from releasenotes/notes (reno reads them from git).
    "reno.sphinxext",
]

master_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = []
pygments_style = "sphinx"
# Every cross-reference must resolve: a dangling one is a warning, and
# warnings fail the build.
nitpicky = True

html_theme = "alabaster"
html_theme_options = {
    "description": "SR naming, live migration and LVHD SR resignature for "
                   "Nova's XenAPI driver and Cinder",
    "fixed_sidebar": True,
}
html_static_path = []
html_title = "nova-xenapi-resign"
