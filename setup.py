"""Packages: everything under modelzoo/, plus the top-level manifest/ shipped as modelzoo.manifest_data.

(setup.cfg's ``packages = find:`` cannot add a package that lives outside the
package folder; the metadata stays in setup.cfg.)
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["modelzoo", "modelzoo.*"]) + ["modelzoo.manifest_data"])
