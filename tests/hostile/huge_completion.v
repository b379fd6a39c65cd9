// Padded by the test to 10 MB of comment lines after the module (see expectations.yaml).
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endmodule
