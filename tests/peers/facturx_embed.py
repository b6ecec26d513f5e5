#!/usr/bin/env python3
"""Makes a Factur-X PDF with the factur-x library (PyPI, an independent implementation):
the PDF relance rendered, with the CII XML embedded as factur-x.xml after checking it
against the Factur-X XSD of its level. Used by tests/relance/einvoice.rs.

    facturx_embed.py IN.pdf IN.xml OUT.pdf LEVEL

Prints the XML the library reads back from OUT.pdf; exits 1 with the reason when the XML
does not pass the schema.
"""
import sys

import facturx

pdf_in, xml_in, pdf_out, level = sys.argv[1:5]
pdf = open(pdf_in, "rb").read()
xml = open(xml_in, "rb").read()
if not facturx.xml_check_xsd(xml, flavor="factur-x", level=level):
    print("the XML does not pass the Factur-X XSD", file=sys.stderr)
    sys.exit(1)
out = facturx.generate_from_binary(pdf, xml, flavor="factur-x", level=level, check_xsd=True)
open(pdf_out, "wb").write(out)
name, back = facturx.get_xml_from_pdf(out, check_xsd=True)
sys.stdout.write(back.decode("utf-8"))
